"""Create the stage's model bucket and event table (with its time index) if they are missing.

  python scripts/provision.py --stage dev      # in AWS, with your usual credentials

`make demo` does this for the local stack by itself.
"""

from __future__ import annotations

import argparse
import sys

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.resources import Resources


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="chalice stage (default: local)")
    args = parser.parse_args(argv)
    try:
        settings = settings_for_stage(args.stage)
        Resources(settings).provision()
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"bucket {settings.model_bucket} and table {settings.events_table} are ready ({settings.region})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
