"""Make a user token: what a website's backend does before a page asks for its visitor's recommendations.

  python scripts/user_token.py 196                  # the demo's stage, valid one hour
  python scripts/user_token.py u-42 --ttl 600 --stage prod

Signs with the stage's first user-token secret (USER_TOKEN_SECRETS, read from
Secrets Manager when it is referenced there) and prints the token alone, so
that `TOKEN=$(python scripts/user_token.py 196)` works in a shell.
"""

from __future__ import annotations

import argparse
import sys

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.eventlog.rules import check_id
from chalicelib.resources import Resources


def main(argv: list[str] | None = None) -> int:
    """Print a token for the user id of *argv*; 0 on success, 2 on a configuration error."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("user_id", help="the user the token vouches for")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds the token is valid (default 3600)")
    parser.add_argument("--stage", default="local", help="chalice stage whose signing secret to use (default: local)")
    args = parser.parse_args(argv)
    try:
        user_id = check_id(args.user_id, "user_id")
        token = Resources(settings_for_stage(args.stage)).user_tokens.sign(user_id, args.ttl)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
