"""scripts/compile_bundle.py: a bundle carries the bytecode of what `import app` loads, and it is what runs."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support import load_script

compile_cli = load_script("compile_bundle")

TAG = sys.implementation.cache_tag
RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"


def make_package(directory: Path, runtime: str = RUNTIME) -> Path:
    """A deployment.zip whose app imports one module of two, and its sam.json."""
    bundle = directory / "deployment.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        archive.writestr("app.py", "import shelf.used\n")
        archive.writestr("shelf/__init__.py", "")
        archive.writestr("shelf/used.py", "ANSWER = 'compiled'\n")
        archive.writestr("shelf/unused.py", "ANSWER = 'never imported'\n")
    template = {"Resources": {"Api": {"Type": "AWS::Serverless::Function", "Properties": {"Runtime": runtime}},
                              "Role": {"Type": "AWS::IAM::Role", "Properties": {}}}}
    (directory / "sam.json").write_text(json.dumps(template))
    return bundle


def test_the_modules_import_app_loads_get_unchecked_bytecode_and_no_others(tmp_path, capsys):
    bundle = make_package(tmp_path)

    assert compile_cli.main([str(bundle)]) == 0

    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        header = archive.read(f"shelf/__pycache__/used.{TAG}.pyc")[:16]
    assert {f"__pycache__/app.{TAG}.pyc", f"shelf/__pycache__/__init__.{TAG}.pyc",
            f"shelf/__pycache__/used.{TAG}.pyc"} <= names
    assert f"shelf/__pycache__/unused.{TAG}.pyc" not in names
    assert int.from_bytes(header[4:8], "little") == 0b01  # hash-based, never checked against the source (PEP 552)
    assert "bytecode of 3 modules" in capsys.readouterr().out


def test_the_bytecode_is_what_runs_without_a_writable_cache(tmp_path):
    bundle = make_package(tmp_path)
    compile_cli.main([str(bundle)])
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(bundle) as archive:
        archive.extractall(unpacked)
    # Were the source compiled at import, this edit would show: the bundle's bytecode runs instead.
    (unpacked / "shelf" / "used.py").write_text("ANSWER = 'compiled at import'\n")

    answer = subprocess.run([sys.executable, "-B", "-c", "import shelf.used; print(shelf.used.ANSWER)"],
                            cwd=unpacked, capture_output=True, text=True, check=True).stdout.strip()

    assert answer == "compiled"


def test_another_python_than_the_runtime_is_refused(tmp_path, capsys):
    bundle = make_package(tmp_path, runtime="python3.9")
    size = bundle.stat().st_size

    assert compile_cli.main([str(bundle)]) == 2

    assert "the bundle runs on python3.9" in capsys.readouterr().err
    assert bundle.stat().st_size == size
