"""Add bytecode to a Lambda bundle for the modules a cold start imports.

Lambda's code directory is read-only, so Python cannot keep the __pycache__ it would write there:
without bytecode in the bundle, every cold start compiles each module it imports from source.
Importing the app from the unzipped bundle took 1.1 to 1.6 s that way against about 0.5 s with
bytecode (README, Deploy). This adds, for every module of the bundle that ``import app`` loads, its
``.pyc`` in unchecked-hash mode: never compared with its source, since a bundle does not change.
Only those modules: bytecode for the whole bundle would add about 8 MB zipped towards Lambda's 50.

  python scripts/compile_bundle.py out/prod/deployment.zip     # `make package` runs it

The Python running this must be the Lambda runtime's version (read from ``sam.json`` beside the
zip): bytecode of another version would be ignored.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import py_compile
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

#: Run in a child with the bundle first on sys.path: which of its source files does `import app` load?
_LIST_IMPORTED = """
import json, sys
from pathlib import Path
bundle = Path(sys.argv[1]).resolve()
sys.path.insert(0, str(bundle))
import app  # noqa: F401
files = {Path(module.__file__).resolve() for module in list(sys.modules.values())
         if getattr(module, "__file__", None) and module.__file__.endswith(".py")}
print(json.dumps(sorted(str(path.relative_to(bundle)) for path in files if bundle in path.parents)))
"""


class BundleError(Exception):
    """The bundle cannot be given bytecode (wrong Python, no app in it)."""


def runtime_of(package_dir: Path) -> str:
    """The Lambda runtime every function of the package's ``sam.json`` uses, e.g. ``python3.11``."""
    template = json.loads((package_dir / "sam.json").read_text())
    runtimes = {resource["Properties"]["Runtime"] for resource in template["Resources"].values()
                if resource.get("Type") == "AWS::Serverless::Function" and "Runtime" in resource.get("Properties", {})}
    if len(runtimes) != 1:
        raise BundleError(f"expected one Lambda runtime in {package_dir / 'sam.json'}, found {sorted(runtimes)}")
    return runtimes.pop()


def imported_modules(bundle_dir: Path) -> list[str]:
    """Paths, relative to *bundle_dir*, of the bundle's source files that ``import app`` loads."""
    environment = {"PATH": "/usr/bin:/bin"}  # no PYTHONPATH: the bundle's copies must be the ones imported
    result = subprocess.run([sys.executable, "-B", "-c", _LIST_IMPORTED, str(bundle_dir)], cwd=bundle_dir,
                            env=environment, capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise BundleError(f"`import app` failed in the unzipped bundle:\n{result.stderr.strip()}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def add_bytecode(bundle: Path) -> tuple[int, int, int]:
    """Add the cold start's bytecode to the zip *bundle*; returns (modules compiled, bytes before, after)."""
    expected = f"python{sys.version_info.major}.{sys.version_info.minor}"
    runtime = runtime_of(bundle.parent)
    if runtime != expected:
        raise BundleError(f"the bundle runs on {runtime} but this is {expected}: its bytecode would not load")
    before = bundle.stat().st_size
    with tempfile.TemporaryDirectory() as scratch:
        unpacked = Path(scratch)
        with zipfile.ZipFile(bundle) as archive:
            present = set(archive.namelist())
            archive.extractall(unpacked)
        modules = imported_modules(unpacked)
        compiled = []
        for relative in modules:
            source = unpacked / relative
            target = Path(importlib.util.cache_from_source(str(source)))
            py_compile.compile(str(source), cfile=str(target), dfile=relative, doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            name = target.relative_to(unpacked).as_posix()
            if name not in present:
                compiled.append((target, name))
        with zipfile.ZipFile(bundle, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            for target, name in compiled:
                archive.write(target, name)
    return len(compiled), before, bundle.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bundle", type=Path, help="the deployment.zip of `chalice package` (sam.json beside it)")
    args = parser.parse_args(argv)
    try:
        count, before, after = add_bytecode(args.bundle)
    except (BundleError, OSError, zipfile.BadZipFile) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.bundle}: bytecode of {count} modules a cold start imports added; "
          f"{before / 2**20:.1f} MiB -> {after / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
