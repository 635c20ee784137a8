"""RELIABILITY.md holds: every promise names at least one test, and every test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMISES = ("Nothing accepted is lost", "Nothing is stored twice", "No request outlasts its deadline",
            "Bad input never reaches the store", "Erasure is complete", "A broken model never replaces a good one",
            "No internals in error bodies")


def sections() -> dict[str, str]:
    text = (ROOT / "RELIABILITY.md").read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return {part.splitlines()[0].strip(): part for part in parts}


def test_every_promise_has_its_section_and_every_line_names_a_test():
    found = sections()
    assert set(PROMISES) <= set(found)
    for promise in PROMISES:
        lines = [line for line in found[promise].splitlines() if line.startswith("- ")]
        assert lines, promise
        assert all("::test_" in line for line in lines), promise


def test_every_test_named_exists():
    text = (ROOT / "RELIABILITY.md").read_text()
    named = set(re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", text))
    assert named
    missing = []
    for path, name in sorted(named):
        tree = ast.parse((ROOT / path).read_text())
        functions = {node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
        if name not in functions:
            missing.append(f"{path}::{name}")
    assert missing == []
