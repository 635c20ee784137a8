"""Make API keys, and the configuration entries that name them by hash.

  python scripts/keys.py new publishable --id web-2026-12 --origin https://shop.example
  python scripts/keys.py new secret --id backend-2026-12
  python scripts/keys.py hash sk_...

`new` prints the key once (hand it to whoever needs it; it is stored nowhere)
and the JSON entry to add to PUBLISHABLE_KEYS or SECRET_KEYS of the stage in
.chalice/config.json. To rotate a key: add the new entry beside the old one,
deploy, move clients to the new key, then remove the old entry and deploy.
"""

from __future__ import annotations

import argparse
import json
import sys

from chalicelib.access.keys import hash_key, new_key
from chalicelib.config import ORIGIN_PATTERN, PUBLISHABLE, SECRET


def main(argv: list[str] | None = None) -> int:
    """Run the command line *argv*; 0 on success, 2 on bad arguments."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("new", help="a new random key and its configuration entry")
    make.add_argument("kind", choices=(PUBLISHABLE, SECRET))
    make.add_argument("--id", required=True, dest="key_id", help="the key's name in configuration and logs")
    make.add_argument("--origin", action="append", default=[],
                      help="a web origin allowed to use a publishable key (repeat for several)")
    digest = commands.add_parser("hash", help="the sha256 a key is configured by")
    digest.add_argument("key")
    args = parser.parse_args(argv)

    if args.command == "hash":
        print(hash_key(args.key))
        return 0
    if args.kind == PUBLISHABLE and not args.origin:
        print("error: a publishable key needs at least one --origin (the pages that may use it)", file=sys.stderr)
        return 2
    bad = [origin for origin in args.origin if not ORIGIN_PATTERN.match(origin)]
    if bad or (args.kind == SECRET and args.origin):
        print(f"error: origins are scheme://host[:port] and only for publishable keys, got {bad or args.origin}",
              file=sys.stderr)
        return 2
    key = new_key(args.kind)
    entry = {"id": args.key_id, "sha256": hash_key(key)}
    if args.kind == PUBLISHABLE:
        entry["origins"] = args.origin
    variable = "PUBLISHABLE_KEYS" if args.kind == PUBLISHABLE else "SECRET_KEYS"
    print(f"key (shown once): {key}")
    print(f"add to {variable}: {json.dumps(entry)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
