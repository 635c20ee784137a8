"""Import interactions from a file into the event log, through the API's write path.

  python scripts/import_events.py data/movielens-100k/u.data --format movielens-100k

Re-running the same import stores nothing twice. Malformed rows are reported
with their line numbers and skipped, unless --strict. Exit status: 0 when
every valid row is stored, 1 when rows were rejected or not stored, 2 on a
strict abort or a configuration error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.eventlog.formats import FORMATS, count_lines
from chalicelib.eventlog.importer import ImportAborted, import_file
from chalicelib.resources import Resources

SHOWN_REJECTIONS = 20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="file to import")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="file_format")
    parser.add_argument("--stage", default="local", help="chalice stage whose table receives the events (default: local)")
    parser.add_argument("--strict", action="store_true", help="stop at the first malformed row")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    try:
        settings = settings_for_stage(args.stage)
        started = time.perf_counter()
        with tqdm(total=count_lines(args.path), unit="row", desc=f"importing {args.path.name}") as bar:
            summary = import_file(
                args.path, args.file_format, Resources(settings).event_log, frozenset(settings.event_weight_map),
                strict=args.strict, progress=bar.update,
            )
    except ImportAborted as exc:
        print(f"aborted (--strict): {exc}", file=sys.stderr)
        return 2
    except (RecommenderError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"read {summary.read}, stored {summary.stored}, duplicates {summary.duplicates}, "
          f"rejected {len(summary.rejected)}, not stored {summary.not_stored} "
          f"in {elapsed:.1f} s ({summary.read / max(elapsed, 1e-9):.0f} rows/s) into {settings.events_table}")
    for _, reason in summary.rejected[:SHOWN_REJECTIONS]:
        print(f"  rejected {reason}")
    if len(summary.rejected) > SHOWN_REJECTIONS:
        print(f"  ... and {len(summary.rejected) - SHOWN_REJECTIONS} more rejected rows")
    return 0 if not summary.rejected and not summary.not_stored else 1


if __name__ == "__main__":
    sys.exit(main())
