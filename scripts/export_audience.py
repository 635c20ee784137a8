"""Write a whole audience to S3 as CSV, for an ad platform's custom-audience upload.

The users most likely to engage with an item (or a catalog category), by the
model's predicted score, as the audience routes rank them: users who already
interacted with it are left out unless --include-engaged, users erased since
the model was trained always (their erasure markers are read from the stage's
event table, a chunk at a time). Parts of --chunk-users users (part-00000.csv,
..., header user_id,score, best first) go under s3://bucket/prefix/<model
version>/, and _manifest.json is written last.

  python scripts/export_audience.py --item 50 --to s3://my-bucket/audiences/star-wars
  python scripts/export_audience.py --category Sci-Fi --top-share 0.1 --to s3://my-bucket/audiences/sci-fi
  python scripts/export_audience.py --item 50 --threshold 0.5 --to s3://my-bucket/audiences/star-wars-keen
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from urllib.parse import urlparse

from tqdm import tqdm

from chalicelib.catalog.index import CatalogIndexCache
from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.exports import open_export
from chalicelib.insights.audience_export import DEFAULT_CHUNK_USERS, export_audience
from chalicelib.insights.audiences import category_target, item_target
from chalicelib.resources import Resources
from chalicelib.serving.filters import ItemFilters
from chalicelib.serving.recommender import Recommender

#: The longest the script waits for its one read of the whole catalog (a category's items).
CATALOG_READ_SECONDS = 600.0


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--item", help="the item whose audience to export")
    target.add_argument("--category", help="the catalog category whose audience to export")
    parser.add_argument("--to", required=True, help="s3://bucket/prefix: the version's folder goes under it")
    parser.add_argument("--stage", default="local", help="chalice stage whose models, catalog and events to read")
    parser.add_argument("--version", help="the model version to use (default: the live one)")
    cut = parser.add_mutually_exclusive_group()
    cut.add_argument("--threshold", type=float, help="only users scoring at least this")
    cut.add_argument("--top-share", type=_share, help="only the best share of the eligible users, in (0, 1]")
    parser.add_argument("--include-engaged", action="store_true",
                        help="keep users who already interacted with the item (any item of the category)")
    parser.add_argument("--chunk-users", type=_positive, default=DEFAULT_CHUNK_USERS,
                        help=f"users a CSV part (default {DEFAULT_CHUNK_USERS:,})")
    parser.add_argument("--no-erasure-check", action="store_true",
                        help="do not read erasure markers (only when the event table is gone; erased users may appear)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    destination = urlparse(args.to)
    if destination.scheme != "s3" or not destination.netloc:
        parser.error(f"--to must be s3://bucket/prefix, got {args.to!r}")

    started = time.perf_counter()
    try:
        resources = Resources(settings_for_stage(args.stage))
        artifact, folder = open_export(resources.model_registry, resources.s3, destination.netloc,
                                       destination.path, args.version)
        version, model = artifact.version, Recommender(artifact)
        if args.item is not None:
            target, described = item_target(model, args.item), {"item_id": args.item}
        else:
            filters = ItemFilters(CatalogIndexCache(resources.catalog.all_items, ttl_seconds=float("inf"),
                                                    wait_seconds=CATALOG_READ_SECONDS))
            target, described = category_target(model, filters, args.category), {"category": args.category}
        erasures = None if args.no_erasure_check else resources.event_log.erasures
        with tqdm(unit="user", desc=f"audience from {version}") as bar:
            summary = export_audience(model.artifact, target, described, folder,
                                      include_engaged=args.include_engaged, threshold=args.threshold,
                                      top_share=args.top_share, chunk=args.chunk_users, erasures=erasures,
                                      progress=bar.update)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    left_out = [] if args.include_engaged else [f"{summary.engaged_users:,} engaged"]
    print(f"{summary.users:,} users from {version} in {len(summary.parts)} parts "
          f"({summary.bytes_written / 2**20:.1f} MiB) in {seconds:.1f} s; "
          f"left out: {', '.join([*left_out, f'{summary.erased_users:,} erased'])}")
    print(f"manifest: s3://{destination.netloc}/{folder.key('_manifest.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
