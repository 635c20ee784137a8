"""Retrain from the event log and publish the new model only if it beats the live one.

  python scripts/retrain.py                 # the demo's stack (stage "local")
  python scripts/retrain.py --stage prod --from-export s3://bucket/exports/events
  spark-submit scripts/retrain.py --engine spark --stage prod --from-export s3://...   # Spark MLlib fits

Reads every event (parallel Scan, or a DynamoDB export in S3), builds the
user x item matrix, holds out each user's latest interactions (or a random
stratified share), tunes ALS on a validation split carved from the training
part, evaluates candidate, live model and popularity on the same held-out
data, and publishes the candidate (refitted on all data) only when it beats
popularity and the live model by --margin. Writes report.md and report.png.

Exit status: 0 published (or would be, with --dry-run); 1 the gate refused
the candidate; 2 an error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from tqdm import tqdm

from chalicelib.config import PROJECT_DIR, settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.reports.store import InsightsReports
from chalicelib.resources import Resources
from chalicelib.training.engine import ENGINE_NAMES, training_engine
from chalicelib.training.report import write_report
from chalicelib.training.retrain import Progress, RetrainOptions, retrain
from chalicelib.training.sources.export import read_export
from chalicelib.training.sources.scan import read_event_log
from chalicelib.training.splits import RANDOM, TIME


class BarProgress(Progress):
    """A tqdm bar per long phase, a line per finished phase."""

    def __init__(self) -> None:
        self._bar: tqdm | None = None

    def phase(self, name: str, total: int | None = None) -> Callable[[int], None]:
        self._close()
        unit = {"read": "event", "search": "trial", "evaluate": "model"}.get(name, "step")
        self._bar = tqdm(total=total, desc=name, unit=unit, leave=False)
        return self._bar.update

    def done(self, name: str, seconds: float) -> None:
        count = self._bar.n if self._bar is not None else None
        self._close()
        rate = f" ({count / seconds:,.0f}/s)" if count and seconds > 0 and name == "read" else ""
        print(f"  {name:8s} {seconds:7.1f} s{rate}", flush=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def main(argv: list[str] | None = None) -> int:
    defaults = RetrainOptions()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="chalice stage (default: local, the demo's stack)")
    parser.add_argument("--from-export", metavar="S3URI", help="read a DynamoDB export (DYNAMODB_JSON) instead of scanning")
    parser.add_argument("--segments", type=int, default=4, help="parallel Scan segments (default 4)")
    parser.add_argument("--split", choices=(TIME, RANDOM), default=defaults.split,
                        help="held-out data: each user's latest interactions (time, default) or a random share")
    parser.add_argument("--test-fraction", type=float, default=defaults.test_fraction)
    parser.add_argument("--budget", type=int, default=defaults.budget, help="configurations tried by the search (0: no search, the live model's configuration or the defaults)")
    parser.add_argument("--refit-from-scratch", action="store_true",
                        help="fit the published model from random factors with every iteration, not from the "
                             "evaluated candidate's factors with a third of them")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--max-eval-users", type=int, default=defaults.max_eval_users,
                        help="evaluate at most this many users, a seeded sample (default 20000)")
    parser.add_argument("--margin", type=float, default=defaults.margin,
                        help="nDCG@10 the candidate must gain over the live model (default 0)")
    parser.add_argument("--half-life-days", type=float, help="time decay of event weights (default: none)")
    parser.add_argument("--keep", type=int, default=defaults.keep_versions, help="model versions kept in S3")
    parser.add_argument("--report-dir", type=Path, help="where report.md and report.png go (default reports/<time>)")
    parser.add_argument("--approximate-index-min-items", type=int, default=defaults.approximate_index_min_items,
                        metavar="N", help="build an approximate top-N index into models of at least N items "
                        f"(default {defaults.approximate_index_min_items:,}; -1: never)")
    parser.add_argument("--user-segments", type=int, default=defaults.user_segments, metavar="N",
                        help=f"audience segments to cluster users into (default {defaults.user_segments}; 0: none; "
                             "not --segments, the Scan's)")
    parser.add_argument("--engine", choices=ENGINE_NAMES, default="implicit",
                        help="what fits ALS: implicit on this machine (default), or Spark MLlib (README, Scale)")
    parser.add_argument("--spark-master", metavar="URL",
                        help="with --engine spark: the master (e.g. local[4]); default: what spark-submit sets, "
                             "else local[*]")
    parser.add_argument("--spark-checkpoint-dir", metavar="URI",
                        help="with --engine spark on a cluster: where ALS checkpoints (s3://... or hdfs://...)")
    parser.add_argument("--force", action="store_true", help="publish even if the gate refuses (recorded)")
    parser.add_argument("--dry-run", action="store_true", help="do everything except publish")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")

    options = replace(
        defaults, split=args.split, test_fraction=args.test_fraction, budget=args.budget, seed=args.seed,
        max_eval_users=args.max_eval_users,
        margin=args.margin, half_life_days=args.half_life_days, keep_versions=args.keep, force=args.force,
        dry_run=args.dry_run, warm_refit=not args.refit_from_scratch,
        approximate_index_min_items=None if args.approximate_index_min_items < 0 else args.approximate_index_min_items,
        user_segments=args.user_segments,
    )
    report_dir = args.report_dir or PROJECT_DIR / "reports" / datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    started = time.perf_counter()
    try:
        settings = settings_for_stage(args.stage)
        resources = Resources(settings)
        registry = resources.model_registry
        if args.from_export:
            def read(progress: Callable[[int], None]):
                return read_export(resources.s3, args.from_export, progress)
        else:
            def read(progress: Callable[[int], None]):
                return read_event_log(resources.scan_table, progress, segments=args.segments)
        print(f"retraining from {args.from_export or settings.events_table} (stage {args.stage}, "
              f"engine {args.engine})", flush=True)
        with training_engine(args.engine, args.spark_master,
                             spark_checkpoint_dir=args.spark_checkpoint_dir) as engine:
            result = retrain(read, registry, EventWeighting.from_settings(settings), options, BarProgress(), engine)
        insights = InsightsReports(resources.s3, settings.model_bucket, settings.model_prefix).latest_address()
        text_path, chart_path = write_report(result, report_dir, insights)
        if result.published:
            registry.put_file(result.version, "report.md", text_path.read_bytes(), "text/markdown")
            registry.put_file(result.version, "report.png", chart_path.read_bytes(), "image/png")
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    target, metrics = result.target, result.metrics
    live = metrics.get("live")
    live_text = f"{live[target]:.4f}" if live else "-"
    print(f"{target}: candidate {metrics['candidate'][target]:.4f}, live {live_text}, "
          f"popularity {metrics['popularity'][target]:.4f}  ({metrics['split']} split)")
    print(f"chosen: {result.chosen}")
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{'PUBLISHED ' + result.version if result.published else 'NOT PUBLISHED'}: {result.reason}")
    shown = text_path.relative_to(PROJECT_DIR) if text_path.is_relative_to(PROJECT_DIR) else text_path
    print(f"report: {shown} and {chart_path.name} ({time.perf_counter() - started:.0f} s in all)")
    gate_ok = result.metrics["gate"]["passed"] or args.force
    return 0 if gate_ok else 1


if __name__ == "__main__":
    sys.exit(main())
