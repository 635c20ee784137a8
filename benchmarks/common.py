"""What every benchmark module shares: the local AWS stack and the standalone command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from typing import Any, Callable, Iterator

from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason


@contextlib.contextmanager
def local_stack() -> Iterator[tuple[str, str, str]]:
    """moto (S3) and dynalite (DynamoDB; moto where Node.js cannot run it) on free 127.0.0.1 ports.

    Fake credentials are set for the duration, so nothing can reach AWS, and the servers are
    stopped and the environment restored afterwards. Yields (S3 URL, DynamoDB URL, which DynamoDB).
    """
    names = (*FAKE_CREDENTIALS, "AWS_DEFAULT_REGION", "AWS_PROFILE")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_PROFILE", None)
    moto = MotoServer().start()
    dynalite: DynaliteServer | None = None
    try:
        reason = dynalite_unavailable_reason()
        if reason is None:
            dynalite = DynaliteServer().start()
        engine = "dynalite" if dynalite is not None else f"moto ({reason})"
        yield moto.url, dynalite.url if dynalite is not None else moto.url, engine
    finally:
        if dynalite is not None:
            dynalite.stop()
        moto.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def standalone(run: Callable[[bool], dict[str, Any]], doc: str | None, quick_help: str,
               argv: list[str] | None = None) -> int:
    """A module's own command line: ``--quick``, then its figures printed as JSON."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=quick_help)
    print(json.dumps(run(parser.parse_args(argv).quick), indent=1))
    return 0
