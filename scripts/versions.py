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

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.models.registry import VersionInfo
from chalicelib.resources import Resources

_COLUMNS = ["VERSION", "LIVE", "CREATED", "CUTOFF", "ALGORITHM", "NDCG@10", "MAP@10", "FORCED"]


def format_table(entries: list[VersionInfo]) -> str:
    """The versions of :meth:`ModelRegistry.list_versions` as an aligned text table."""
    rows = []
    for entry in entries:
        scores = [entry.metric(name) for name in ("ndcg@10", "map@10")]
        row = [
            entry.version,
            "*" if entry.live else "",
            entry.created_at or "-",
            entry.training_cutoff or "-",
            entry.algorithm or "-",
            *("-" if score is None else f"{score:.4f}" for score in scores),
            "yes" if entry.forced else "no",
        ]
        if entry.error is not None:
            row.append(f"error: {entry.error}")
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
        registry = Resources(settings).model_registry
        location = registry.location
        if args.command == "list":
            entries = registry.list_versions()
            print(format_table(entries) if entries else f"no versions under {location}")
        elif args.command == "rollback":
            previous = registry.live_version()
            version = registry.rollback(args.to)
            print(f"live version is now {version} (was {previous})")
        else:
            deleted = registry.prune(args.keep)
            print(f"deleted {len(deleted)} version(s) from {location}" + "".join(f"\n  {v}" for v in deleted))
    except RecommenderError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
