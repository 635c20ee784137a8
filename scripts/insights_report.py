"""The weekly insights report: top and falling content, trending items, best categories, the live model.

  python scripts/insights_report.py                          # writes reports/insights/insights-YYYY-MM-DD.md + .png
  python scripts/insights_report.py --publish --post         # also to s3://<model bucket>/insights/, and to the chat
  python scripts/insights_report.py --stage prod --window 7d --out /tmp/insights --publish --post

Reads the content-performance counters and trending over --window (compared
with the window just before) and the live model's manifest, and writes a
markdown page with a PNG chart. --publish uploads both to the model bucket
under insights/ (and the page again as insights/latest.md, which the retrain's
report links). --post sends a summary to the Slack-compatible incoming webhook
of INSIGHTS_WEBHOOK_URL (or --webhook-url); the URL is a secret, so only its
host is printed.

Exit status: 0 done; 2 an error (nothing posted).
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlsplit

from chalicelib.config import PROJECT_DIR, settings_for_stage, webhook_url
from chalicelib.errors import ConfigError, RecommenderError
from chalicelib.reports.slack import post_to_webhook, slack_payload
from chalicelib.reports.sources import CounterInsights
from chalicelib.reports.store import InsightsReports
from chalicelib.reports.weekly import (
    DEFAULT_LIMIT,
    DEFAULT_WINDOW,
    REPORT_WINDOWS,
    InsightsSource,
    gather_summary,
    render_chart,
    render_markdown,
    report_names,
)
from chalicelib.resources import Resources

DEFAULT_OUT = PROJECT_DIR / "reports" / "insights"


def build_source(resources: Resources) -> InsightsSource:
    """The stage's content counters and trending, adapted to :class:`InsightsSource`."""
    return CounterInsights(resources.insights.content_performance, resources.insights.trending)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _rows(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 100:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100, got {text}")
    return value


def main(argv: list[str] | None = None, source: InsightsSource | None = None,
         now: datetime | None = None) -> int:
    """Run the CLI; *source* replaces the stage's counters and *now* the clock (tests)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="chalice stage whose counters, models and bucket to use")
    parser.add_argument("--window", choices=list(REPORT_WINDOWS), default=DEFAULT_WINDOW,
                        help="period of each figure, compared with the one before: a window the counters keep "
                             f"(default {DEFAULT_WINDOW})")
    parser.add_argument("--limit", type=_rows, default=DEFAULT_LIMIT, help=f"rows per table (default {DEFAULT_LIMIT})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="folder of the page and chart (default reports/insights)")
    parser.add_argument("--publish", action="store_true",
                        help="upload both to s3://<model bucket>/insights/ and the page as insights/latest.md")
    parser.add_argument("--post", action="store_true", help="post a summary to the chat's incoming webhook")
    parser.add_argument("--webhook-url", metavar="URL",
                        help="the webhook to post to (default: INSIGHTS_WEBHOOK_URL; a secret, never printed)")
    parser.add_argument("--timeout", type=_positive, default=10.0, help="seconds each post attempt may take")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    now = now or datetime.now(timezone.utc)

    try:
        settings = settings_for_stage(args.stage)
        url = webhook_url(args.webhook_url, "--webhook-url") if args.webhook_url else settings.insights_webhook_url
        if args.post and url is None:
            raise ConfigError("--post needs a webhook: set INSIGHTS_WEBHOOK_URL or pass --webhook-url")
        resources = Resources(settings)
        summary = gather_summary(source or build_source(resources), resources.model_registry, now, args.window,
                                 args.limit)
        page_name, chart_name = report_names(now)
        page, chart = render_markdown(summary, chart_name), render_chart(summary)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / page_name).write_text(page)
        (args.out / chart_name).write_bytes(chart)
        print(f"report: {args.out / page_name} and {chart_name}")
        address = None
        if args.publish:
            address = InsightsReports(resources.s3, settings.model_bucket, settings.model_prefix).publish(
                page_name, page, chart_name, chart)
            print(f"published: {address} (and latest.md beside it)")
        if args.post:
            post_to_webhook(url, slack_payload(summary, address), timeout=args.timeout)
            print(f"posted to the webhook at {urlsplit(url).hostname}")
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the output folder cannot be written
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
