"""What every benchmark module shares: the local AWS stack and the standalone command line."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

from chalicelib.config import Settings, environment_of
from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason

PROJECT_DIR = Path(__file__).resolve().parents[1]
#: Where a child process (``python -m <module> --child``) prints its figures: the line after this.
CHILD_MARK = "@@FIGURES@@"


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


def run_child(module: str, settings: Settings, timeout: float = 3600) -> dict[str, Any]:
    """Run ``python -m <module> --child`` against the stage of *settings*; the figures it printed.

    A fresh process measures what a script would: its own peak memory, its own load of the model.
    """
    environment = {**os.environ, **FAKE_CREDENTIALS, "PYTHONPATH": str(PROJECT_DIR), "AWS_DEFAULT_REGION": "us-east-1"}
    completed = subprocess.run([sys.executable, "-m", module, "--child", json.dumps(environment_of(settings))],
                               cwd=PROJECT_DIR, env=environment, capture_output=True, text=True, timeout=timeout)
    if completed.returncode != 0:
        raise RuntimeError(f"{module} child failed:\n{completed.stderr[-3000:]}")
    return json.loads(next(line[len(CHILD_MARK):] for line in completed.stdout.splitlines()
                            if line.startswith(CHILD_MARK)))


def parent_or_child(run: Callable[[bool], dict[str, Any]], child: Callable[[dict[str, str]], dict[str, Any]],
                    argv: list[str]) -> int:
    """The command line of a module measured in a child process: ``--child SETTINGS`` (the child's side,
    see :func:`run_child`) or ``[--quick]``, whose figures are printed as JSON."""
    if argv[:1] == ["--child"]:
        print(CHILD_MARK + json.dumps(child(json.loads(argv[1]))))
    else:
        print(json.dumps(run("--quick" in argv), indent=1))
    return 0
