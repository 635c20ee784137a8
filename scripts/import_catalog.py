"""Import catalog items from a file into the catalog table, with the API's item rules.

  python scripts/import_catalog.py data/movielens-100k/u.item --format movielens-100k

Items are upserted in chunks of 100, so re-running an import stores the same
items again. Malformed rows are reported with their line numbers and skipped.
Exit status: 0 when every row was valid and stored, 1 when rows were rejected
(the valid ones are stored), 2 when the file cannot be read or the catalog
cannot be reached (chunks sent before the failure stay stored).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from chalicelib.catalog.formats import FORMATS, KEPT_REJECTIONS, import_file
from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.eventlog.formats import count_lines
from chalicelib.resources import Resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path, help="file to import")
    parser.add_argument("--format", required=True, choices=FORMATS, dest="file_format")
    parser.add_argument("--stage", default="local", help="chalice stage whose catalog receives the items "
                                                         "(default: local)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    try:
        settings = settings_for_stage(args.stage)
        started = time.perf_counter()
        with tqdm(total=count_lines(args.path), unit="line", desc=f"importing {args.path.name}") as bar:
            summary = import_file(args.path, args.file_format, Resources(settings).catalog, progress=bar.update)
    except (RecommenderError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"read {summary.read}, stored {summary.stored}, rejected {summary.rejected} "
          f"in {elapsed:.1f} s ({summary.read / max(elapsed, 1e-9):.0f} rows/s) into {settings.catalog_table_name}")
    for _, reason in summary.rejections:
        print(f"  rejected {reason}")
    if summary.rejected > len(summary.rejections):
        print(f"  ... and {summary.rejected - len(summary.rejections)} more rejected rows "
              f"(the first {KEPT_REJECTIONS} are shown)")
    return 0 if not summary.rejected else 1


if __name__ == "__main__":
    sys.exit(main())
