"""The code map of README holds: each folder of chalicelib imports only what it may.

Read from the source with ``ast``, so a wrong import fails here with the file
and line, before it can pull training libraries into the Lambda or tie a
low layer to a high one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CHALICELIB = Path(__file__).resolve().parents[1] / "chalicelib"

#: Folder (or module) -> the parts of chalicelib it must not import.
FORBIDDEN = {
    "models": {"api", "serving", "eventlog", "training", "resources", "jobs", "insights", "exports"},
    "eventlog": {"api", "serving", "models", "training", "resources", "jobs", "insights", "exports"},
    "serving": {"api", "training", "resources", "jobs", "insights", "exports"},
    "insights": {"api", "training", "resources", "jobs", "access"},
    "exports": {"api", "serving", "eventlog", "training", "resources", "jobs", "insights", "catalog", "access"},
    "api": {"training"},
    "resources": {"api", "training"},
    "training": {"api", "resources", "jobs", "insights"},
    "catalog": {"api", "serving", "models", "training", "resources", "insights", "exports"},
    "access": {"api", "serving", "models", "eventlog", "training", "resources", "insights", "exports"},
    "config": {"api", "serving", "models", "eventlog", "training", "resources", "insights", "exports"},
    "errors": {"api", "serving", "models", "eventlog", "training", "resources", "config", "insights", "exports"},
    "deadlines": {"api", "serving", "models", "eventlog", "training", "resources", "config", "errors", "access",
                  "insights", "exports"},
    "jobs": {"api", "serving", "models", "eventlog", "training", "resources", "catalog", "access", "insights",
             "exports"},
    # insights/: the weekly figures are the counters' listings and trending, adapted (reports/sources.py).
    "reports": {"api", "serving", "eventlog", "catalog", "training", "resources", "jobs", "access"},
}
# reports/ (the weekly insights report: scripts only) draws with matplotlib: no other part may import it.
for _part, _forbidden in FORBIDDEN.items():
    if _part != "reports":
        _forbidden.add("reports")
#: Libraries only training may import (Lambda bundle size and cold start).
TRAINING_ONLY = {"scipy", "implicit", "threadpoolctl", "matplotlib", "tqdm", "pyspark"}
#: The parts that run offline only, and which of those libraries each may import.
OFFLINE_LIBRARIES = {"training": TRAINING_ONLY, "reports": {"matplotlib"}}


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of every import in *path*, relative ones resolved."""
    tree = ast.parse(path.read_text())
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.append((node.lineno, node.module))
    return found


def part_of(path: Path) -> str:
    relative = path.relative_to(CHALICELIB)
    return relative.parts[0].removesuffix(".py")


def sources() -> list[Path]:
    return sorted(CHALICELIB.rglob("*.py"))


@pytest.mark.parametrize("path", sources(), ids=lambda path: str(path.relative_to(CHALICELIB)))
def test_each_module_imports_only_what_its_folder_may(path):
    part = part_of(path)
    wrong = []
    for line, module in imports_of(path):
        top = module.split(".")
        if top[0] == "local_aws":
            wrong.append(f"line {line}: {module} (emulators are for the demo and tests)")
        if top[0] in TRAINING_ONLY - OFFLINE_LIBRARIES.get(part, set()):
            wrong.append(f"line {line}: {module} (training libraries stay out of the serving path)")
        if top[0] == "chalicelib" and len(top) > 1 and top[1] in FORBIDDEN.get(part, set()):
            wrong.append(f"line {line}: {module} ({part} may not import {top[1]})")
    assert wrong == []


def test_readme_code_map_names_every_folder_and_top_module():
    readme = (CHALICELIB.parent / "README.md").read_text()
    code_map = readme[readme.index("## Code map"):]
    code_map = code_map[:code_map.index("\n## ", 1)]
    parts = {path.name + ("/" if path.is_dir() else "") for path in CHALICELIB.iterdir()
             if not path.name.startswith("__")}
    assert sorted(part for part in parts if f"chalicelib/{part}" not in code_map) == []
