"""List, roll back and prune the model versions published to a stage's S3 bucket.

    python scripts/versions.py list
    python scripts/versions.py rollback [--to VERSION]
    python scripts/versions.py prune --keep N

rollback without --to moves the pointer to the newest valid version older than
the live one; prune keeps the N newest versions and always the live one.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from chalicelib.artifact import ModelStore
from chalicelib.aws import s3_client
from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError

_COLUMNS = ["VERSION", "LIVE", "CREATED", "CUTOFF", "ALGORITHM", "NDCG@10", "MAP@10", "FORCED"]


def metric(metrics: Any, name: str) -> float | None:
    """*name* from a manifest's metrics: the candidate model's, else top level; None if absent."""
    if not isinstance(metrics, dict):
        return None
    candidate = metrics.get("candidate")
    for source in (candidate if isinstance(candidate, dict) else {}, metrics):
        value = source.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def format_table(entries: list[dict[str, Any]]) -> str:
    """The versions of :meth:`ModelStore.list_versions` as an aligned text table."""
    rows = []
    for entry in entries:
        scores = [metric(entry.get("metrics"), name) for name in ("ndcg@10", "map@10")]
        row = [
            entry["version"],
            "*" if entry.get("live") else "",
            entry.get("created_at") or "-",
            entry.get("training_cutoff") or "-",
            entry.get("algorithm") or "-",
            *("-" if score is None else f"{score:.4f}" for score in scores),
            "yes" if entry.get("forced") else "no",
        ]
        if "error" in entry:
            row.append(f"error: {entry['error']}")
        rows.append(row)
    widths = [max(len(str(row[i])) for row in [_COLUMNS, *rows]) for i in range(len(_COLUMNS))]
    lines = []
    for row in [_COLUMNS, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)] + row[len(_COLUMNS):]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the command line *argv*; 0 on success, 2 on a store or configuration error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="chalice stage whose bucket to use (default: local, the demo)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("list", help="every version, newest first")
    rollback = commands.add_parser("rollback", help="make an older version live")
    rollback.add_argument("--to", metavar="VERSION", help="the version to make live (default: the previous valid one)")
    prune = commands.add_parser("prune", help="delete all but the newest versions and the live one")
    prune.add_argument("--keep", type=int, required=True, metavar="N", help="how many of the newest versions to keep")
    args = parser.parse_args(argv)

    try:
        settings = settings_for_stage(args.stage)
        store = ModelStore(s3_client(settings), settings.model_bucket, settings.model_prefix)
        location = f"s3://{settings.model_bucket}/{settings.model_prefix}/"
        if args.command == "list":
            entries = store.list_versions()
            print(format_table(entries) if entries else f"no versions under {location}")
        elif args.command == "rollback":
            previous = store.live_version()
            version = store.rollback(args.to)
            print(f"live version is now {version} (was {previous})")
        else:
            deleted = store.prune(args.keep)
            print(f"deleted {len(deleted)} version(s) from {location}" + "".join(f"\n  {v}" for v in deleted))
    except RecommenderError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
