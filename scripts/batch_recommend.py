"""Write the top-N of every user (or of a list) as JSON lines to S3: recommendations computed ahead.

For email campaigns and feeds. Each line is one user:
{"user_id": "42", "model_version": "...", "items": [{"item_id": "50", "score": 0.93}, ...]},
ranked as GET /users/{id}/recommendations ranks a known user on the model
alone. Chunks of users become parts (part-00000.jsonl, ...) under
s3://bucket/prefix/<model version>/, and _manifest.json is written last.
Users erased since the model was trained are left out (their erasure markers
are read from the stage's event table); users the model does not know are
counted and left out.

  python scripts/batch_recommend.py --to s3://my-bucket/campaigns            # every user, live model
  python scripts/batch_recommend.py --to s3://my-bucket/campaigns --version 20261130T... --users ids.txt --n 20
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

from tqdm import tqdm

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.exports import open_export
from chalicelib.resources import Resources
from chalicelib.training.batch import chunk_size, export_recommendations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--to", required=True, help="s3://bucket/prefix: the version's folder goes under it")
    parser.add_argument("--stage", default="local", help="chalice stage whose models and events to read (default local)")
    parser.add_argument("--version", help="the model version to use (default: the live one)")
    parser.add_argument("--users", type=Path, help="a file of user ids, one a line (default: every user the model knows)")
    parser.add_argument("--n", type=int, default=10, help="items per user (default 10)")
    parser.add_argument("--chunk-users", type=int, help="users ranked at once (default: 64 MB of scores)")
    parser.add_argument("--no-erasure-check", action="store_true",
                        help="do not read erasure markers (only when the event table is gone; erased users may appear)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    destination = urlparse(args.to)
    if destination.scheme != "s3" or not destination.netloc:
        parser.error(f"--to must be s3://bucket/prefix, got {args.to!r}")
    if not 1 <= args.n <= 1000:
        parser.error("--n must be between 1 and 1000")
    user_ids = None
    if args.users:
        user_ids = [line.strip() for line in args.users.read_text().splitlines() if line.strip()]

    started = time.perf_counter()
    try:
        resources = Resources(settings_for_stage(args.stage))
        artifact, output = open_export(resources.model_registry, resources.s3, destination.netloc,
                                       destination.path, args.version)
        version = artifact.version
        erasures = None if args.no_erasure_check else resources.event_log.erasures
        total = len(user_ids) if user_ids is not None else artifact.n_users
        with tqdm(total=total, unit="user", desc=f"ranking with {version}") as bar:
            summary = export_recommendations(artifact, output, args.n, user_ids, args.chunk_users, erasures,
                                             progress=bar.update)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    seconds = time.perf_counter() - started
    print(f"{summary.users:,} users x top {args.n} from {version} in {len(summary.parts)} parts "
          f"({summary.bytes_written / 2**20:.1f} MiB, chunks of {args.chunk_users or chunk_size(artifact.n_items)} "
          f"users) in {seconds:.1f} s; left out: {summary.unknown_users} unknown, {summary.erased_users} erased")
    print(f"manifest: s3://{destination.netloc}/{output.key('_manifest.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
