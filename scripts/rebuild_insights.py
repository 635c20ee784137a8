"""Recompute the insight counters from a full scan of the event log, repairing any drift.

  python scripts/rebuild_insights.py --stage local

Counters are kept at ingest, best effort (README, Insights): a counter update that failed, a retried
one counted twice, or events erased since they were counted leave them off. This scans the whole log,
tallies the events of the last 60 days as ingest does, writes those values over the counters and
deletes the counter items no event supports. Run it when ingest is quiet (events written meanwhile
may be missed or counted twice; running it again settles them). Exit status 0, or 2 on an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from datetime import datetime, timezone

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.insights.counters import counter_connection
from chalicelib.insights.rebuild import rebuild
from chalicelib.resources import Resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="chalice stage whose counters to rebuild (default: local)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        resources = Resources(settings_for_stage(args.stage))
        started = time.perf_counter()
        written, deleted = rebuild(resources.scan_table, counter_connection(resources.insights.counter_table, retries=3),
                                   resources.insights.item_categories, datetime.now(timezone.utc))
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"rebuilt {written} counter items and deleted {deleted} stale ones in "
          f"{time.perf_counter() - started:.1f} s into {resources.settings.insights_table_name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
