"""P2: a cold start's first answer against the floor of loading the same model file from S3.

Run from the project root::

    .venv/bin/python -m benchmarks.coldstart            # 100k and 1M items, 5 runs each (about 2 to 3 minutes)
    .venv/bin/python -m benchmarks.coldstart --quick    # 100k items, 3 runs

A synthetic model (``benchmarks.answers.synthetic_artifact``: random float32
factors, 10 000 users with ~20 seen items each) is published to a local S3
(moto) through ``ModelRegistry.publish``; the catalog and event tables live on
dynalite (moto where Node.js is missing). Then, alternately:

* **cold start**: a new Python process started as a Lambda runtime starts
  one (the stage's variables in its environment, ``PYTHONPATH`` the
  repository) imports ``app`` and calls its handler with an API Gateway
  proxy event for ``GET /users/{id}/recommendations?n=10`` (secret key).
  That first request reads the model from S3 (pointer, manifest,
  ``model.npz``, sha256 and artifact checks, ``Recommender``) and the
  catalog index, then answers (presentation, logs, metrics);
* **floor**: a new Python process that imports numpy and boto3, makes one S3
  client, gets the same ``model.npz`` object and ``numpy.load``s every array
  (``allow_pickle=False``).

Both are started alike (``subprocess.run([sys.executable, "-c", ...])``) and
timed from spawn to exit; the ratio is of the medians. One untimed pair runs
first (file caches), and the order within each pair alternates. Each child
also stamps the wall clock at its first and last line, which gives the same
ratio without the interpreter's exit (``cold_start_vs_floor_before_exit_*``):
an instance answers before any exit, and tearing down botocore's service
models takes tenths of a second that neither side would pay. A last cold
process, instrumented, times the parts of the cold start (imports, settings,
S3 client, each S3 read, sha256, npz read, artifact checks, Recommender, the
first request with the model in memory) for the report.

Settings are ``benchmarks.answers.settings_for``'s (AWS timeouts cut to
2 + 10 s to fit the request deadline): real-time events off, so the first
answer reads no event from DynamoDB (P3 measures that read).
Sizes are in MiB (2**20 bytes).
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _variable in BLAS_THREAD_VARIABLES:
    os.environ[_variable] = "1"  # before numpy is imported, or BLAS has already started its threads

import json  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.answers import settings_for, synthetic_artifact  # noqa: E402
from benchmarks.common import local_stack, standalone  # noqa: E402
from chalicelib.config import Settings, environment_of  # noqa: E402
from chalicelib.models.artifact import MODEL_FILE  # noqa: E402
from chalicelib.resources import Resources  # noqa: E402
from local_aws.stack import FAKE_CREDENTIALS  # noqa: E402
from tests.support import SECRET_KEY, write_stage_config  # noqa: E402

PROJECT_DIR = Path(__file__).resolve().parents[1]
MIB = 2**20
STAGE = "bench"
N = 10
USERS, FACTORS, SEEN_PER_USER = 10_000, 64, 20
SIZES = {"100k": 100_000, "1M": 1_000_000}
#: Where a packaged Lambda bundle may already be (newest wins); else ``chalice package`` makes one.
#: `make package STAGE=prod`'s bundle, bytecode included (chalice's own cache in .chalice/deployments has none).
BUNDLE_CANDIDATES = ("out/prod/deployment.zip",)
#: Marks the line of a child's stdout that carries its timings (the app logs JSON lines there too).
MARK = "@@TIMINGS@@"

# --- the children ----------------------------------------------------------------------------------

#: What a Lambda runtime does on a cold start, minus the runtime's own loop: with the stage's variables
#: already in the environment, import the app (its init) and call the handler with an API Gateway proxy
#: event for the first request, which loads the model. No
#: chalice.test client (0.26 s of imports a Lambda never pays). argv: user id, secret key. The times of its
#: first and last lines split the interpreter's exit (which a Lambda never waits for) from the rest.
COLD_CHILD = """
import time
first_line_at = time.time()
import json, sys
import app
user, key = sys.argv[1:3]
resource = "/users/{user_id}/recommendations"
event = {
    "resource": resource, "path": f"/users/{user}/recommendations", "httpMethod": "GET",
    "headers": {"x-api-key": key, "Host": "localhost"}, "multiValueHeaders": {"x-api-key": [key]},
    "queryStringParameters": {"n": "10"}, "multiValueQueryStringParameters": {"n": ["10"]},
    "pathParameters": {"user_id": user}, "stageVariables": None, "body": None, "isBase64Encoded": False,
    "requestContext": {"resourcePath": resource, "httpMethod": "GET", "requestId": "cold-start",
                       "path": f"/api/users/{user}/recommendations", "stage": "api",
                       "identity": {"sourceIp": "127.0.0.1"}},
}
class Context:
    aws_request_id = "cold-start"
    function_name = "recommendations-api"
    memory_limit_in_mb = 1769
    def get_remaining_time_in_millis(self):
        return 30_000
response = app.app(event, Context())
if response["statusCode"] != 200:
    raise SystemExit(f"first answer: {response['statusCode']} {str(response.get('body'))[:300]!r}")
print("@@TIMINGS@@" + json.dumps({"first_line_at": first_line_at, "last_line_at": time.time(),
                                  "strategy": json.loads(response["body"])["strategy"]}))
"""

#: The floor: numpy + boto3, one client, one GetObject, every array loaded (argv: endpoint, region, bucket,
#: key). Its phases cost a few clock reads and one print.
FLOOR_CHILD = """
import time
first_line_at = time.time()
started = time.perf_counter()
import io, json, sys
import numpy
imported_numpy = time.perf_counter()
import boto3
imported_boto3 = time.perf_counter()
endpoint, region, bucket, key = sys.argv[1:5]
s3 = boto3.client("s3", region_name=region, endpoint_url=endpoint)
made_client = time.perf_counter()
payload = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
downloaded = time.perf_counter()
with numpy.load(io.BytesIO(payload), allow_pickle=False) as npz:
    arrays = {name: npz[name] for name in npz.files}
loaded = time.perf_counter()
print("@@TIMINGS@@" + json.dumps({
    "import numpy": imported_numpy - started, "import boto3": imported_boto3 - imported_numpy,
    "S3 client": made_client - imported_boto3, "GetObject model.npz (read whole body)": downloaded - made_client,
    "numpy.load every array": loaded - downloaded, "first_line_at": first_line_at, "last_line_at": time.time()}))
"""

#: The cold start again, instrumented: each phase timed in turn; the model load runs through the app's
#: own LiveModel with timing shims around the store's reads, the artifact's npz read and checks, and the
#: Recommender (argv: stage, path, secret key). The stage's variables are also in this child's environment
#: so that app_resources() can be called outside a request.
BREAKDOWN_CHILD = """
import time
first_line_at = time.time()
started = time.perf_counter()
import json, sys
timings = {}
last = started
def mark(name):
    global last
    now = time.perf_counter()
    timings[name] = now - last
    last = now
import numpy, boto3
mark("import numpy + boto3 (the floor's imports)")
import app
mark("import app (the rest: chalice, pynamodb, powertools, chalicelib)")
from chalice.test import Client
mark("import chalice.test (the test client; not on Lambda)")
stage, path, key = sys.argv[1:4]
http = Client(app.app, stage_name=stage, project_dir=".").http
mark("test client + stage config (not on Lambda)")
from chalicelib.resources import app_resources
resources = app_resources()
mark("settings + telemetry + Resources")
resources.model_store
mark("serving S3 client")

import chalicelib.models.artifact as artifact_module
import chalicelib.models.store as store_module
import chalicelib.serving.live_model as live_model_module
inner = {}
def timed(name, function):
    def wrapper(*args, **kwargs):
        began = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            inner[name] = inner.get(name, 0.0) + time.perf_counter() - began
    return wrapper
original_get = store_module.ModelStore._get
def timed_get(self, key):
    return timed("S3 GetObject " + key.rsplit("/", 1)[-1], original_get)(self, key)
store_module.ModelStore._get = timed_get
store_module.deserialize = timed("deserialize", store_module.deserialize)
artifact_module._read_npz = timed("npz read (numpy.load every array)", artifact_module._read_npz)
artifact_module._check_arrays = timed("artifact checks (dtypes, shapes, finite, unique ids, CSR)",
                                      artifact_module._check_arrays)
live_model_module.Recommender = timed("Recommender build (id dicts, normalised items, Gram, popularity order)",
                                      live_model_module.Recommender)
recommender = resources.live_model.recommender()
mark("model load (LiveModel: S3 reads + deserialize + Recommender)")
response = http.get(path, headers={"x-api-key": key})
mark("first request, model in memory (auth, catalog index scan, answer, presentation, logs)")
if response.status_code != 200:
    raise SystemExit(f"first answer: {response.status_code} {response.body[:300]!r}")
inner["sha256 + manifest checks"] = (inner.pop("deserialize") - inner["npz read (numpy.load every array)"]
                                     - inner["artifact checks (dtypes, shapes, finite, unique ids, CSR)"])
print("@@TIMINGS@@" + json.dumps({"phases": timings, "model_load_parts": inner,
                                  "strategy": json.loads(response.body)["strategy"],
                                  "first_line_at": first_line_at, "last_line_at": time.time()}))
"""


def _child_environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    environment = {**os.environ, **FAKE_CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(PROJECT_DIR),
                   **{name: "1" for name in BLAS_THREAD_VARIABLES}}
    environment.pop("AWS_PROFILE", None)
    environment.update(extra or {})
    return environment


def run_child(code: str, arguments: list[str], cwd: Path, environment: dict[str, str]) -> tuple[float, dict | None]:
    """Spawn ``python -c code arguments`` and wait for it: its wall time, spawn to exit, and its timings line.

    A timings line carrying ``first_line_at`` and ``last_line_at`` (the child's ``time.time()`` at its
    first and last line) gets the interpreter's start (spawn to first line) and exit (last line to exit).
    """
    spawned_at = time.time()
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-c", code, *arguments], cwd=cwd, env=environment,
                               capture_output=True, text=True, timeout=600)
    seconds = time.perf_counter() - started
    exited_at = time.time()
    if completed.returncode != 0:
        tail = "\n".join((completed.stderr.strip() or completed.stdout.strip()).splitlines()[-15:])
        raise RuntimeError(f"child process failed (exit {completed.returncode}):\n{tail}")
    timings = next((json.loads(line[len(MARK):]) for line in reversed(completed.stdout.splitlines())
                    if line.startswith(MARK)), None)
    if timings is not None and "first_line_at" in timings:
        timings["interpreter start (spawn to first line)"] = timings.pop("first_line_at") - spawned_at
        timings["interpreter exit (last line to exit)"] = exited_at - timings.pop("last_line_at")
    return seconds, timings


# --- one model size --------------------------------------------------------------------------------


def measure_size(n_items: int, runs: int, moto_url: str, dynamodb_url: str) -> dict[str, Any]:
    """Publish a synthetic model of *n_items*; the cold start and floor samples, and one breakdown."""
    # settings_for's AWS timeouts (5 + 20 s) fill its request deadline (25 s), which leaves a request no time
    # for any DynamoDB call; 2 + 10 s fit (a read timeout bounds each wait for bytes, not the download).
    settings: Settings = replace(settings_for(moto_url, dynamodb_url), aws_connect_timeout_seconds=2.0,
                                 aws_read_timeout_seconds=10.0)
    resources = Resources(settings)
    resources.provision()
    started = time.perf_counter()
    artifact = synthetic_artifact(np.random.default_rng(20261130), n_items, USERS, FACTORS, SEEN_PER_USER)
    generated = time.perf_counter()
    version = resources.model_registry.publish(artifact)
    published = time.perf_counter()
    user = str(artifact.user_ids[0])
    del artifact
    key = f"{settings.model_prefix}/{version}/{MODEL_FILE}" if settings.model_prefix else f"{version}/{MODEL_FILE}"
    npz_bytes = resources.s3.head_object(Bucket=settings.model_bucket, Key=key)["ContentLength"]

    project = Path(tempfile.mkdtemp(prefix="bench-coldstart-"))
    try:
        write_stage_config(project, STAGE, settings)
        path = f"/users/{user}/recommendations?n={N}"
        cold = (COLD_CHILD, [user, SECRET_KEY])
        floor = (FLOOR_CHILD, [moto_url, settings.region, settings.model_bucket, key])
        environment = _child_environment(environment_of(settings))  # as Lambda sets them before the import
        for code, arguments in (cold, floor):  # untimed: file caches, moto's first read of the object
            run_child(code, arguments, project, environment)
        samples: dict[str, list[float]] = {"cold": [], "floor": [], "cold_before_exit": [], "floor_before_exit": []}
        floor_phases: list[dict] = []
        for run in range(runs):
            for name in (("cold", "floor") if run % 2 == 0 else ("floor", "cold")):
                seconds, timings = run_child(*(cold if name == "cold" else floor), project, environment)
                if timings is None:
                    raise RuntimeError(f"the {name} child printed no {MARK} line")
                samples[name].append(seconds)
                samples[f"{name}_before_exit"].append(seconds - timings["interpreter exit (last line to exit)"])
                if name == "floor":
                    floor_phases.append({"total": seconds, **timings})
        breakdown_s, breakdown = run_child(BREAKDOWN_CHILD, [STAGE, path, SECRET_KEY], project,
                                           _child_environment(environment_of(settings)))
    finally:
        shutil.rmtree(project, ignore_errors=True)
    if breakdown is None:
        raise RuntimeError(f"the instrumented cold start printed no {MARK} line")
    phases = {"interpreter start (spawn to first line)": breakdown.pop("interpreter start (spawn to first line)"),
              **breakdown["phases"],
              "interpreter exit (last line to exit)": breakdown.pop("interpreter exit (last line to exit)")}
    # The phases of the floor run whose wall time is the median one.
    median_run = dict(sorted(floor_phases, key=lambda entry: entry["total"])[len(floor_phases) // 2])
    total = median_run.pop("total")
    return {
        **{f"{name}_s": statistics.median(values) for name, values in samples.items()},
        "samples_s": samples, "npz_mb": npz_bytes / MIB,
        "breakdown": {"total_s": breakdown_s, "strategy": breakdown["strategy"], "phases_s": phases,
                      "model_load_parts_s": breakdown["model_load_parts"]},
        "floor_breakdown_s": {"total_s": total, "phases_s": median_run},
        "setup_s": {"generate": generated - started, "publish": published - generated},
    }


# --- the bundle ------------------------------------------------------------------------------------


def bundle_zip() -> tuple[float, str]:
    """The Lambda bundle's size in MiB and where it came from: `make package`'s, else a fresh one made the same way."""
    found = [path for pattern in BUNDLE_CANDIDATES for path in PROJECT_DIR.glob(pattern) if path.is_file()]
    if found:
        newest = max(found, key=lambda path: path.stat().st_mtime)
        return newest.stat().st_size / MIB, str(newest.relative_to(PROJECT_DIR))
    chalice = Path(sys.executable).with_name("chalice")
    with tempfile.TemporaryDirectory(prefix="bench-package-") as out:
        subprocess.run([str(chalice), "package", "--stage", "prod", "--merge-template", ".chalice/template.json", out],
                       cwd=PROJECT_DIR, env={**os.environ, "AWS_DEFAULT_REGION": "us-east-1"}, check=True,
                       capture_output=True, timeout=600)
        bundle = Path(out) / "deployment.zip"
        subprocess.run([sys.executable, str(PROJECT_DIR / "scripts" / "compile_bundle.py"), str(bundle)],
                       cwd=PROJECT_DIR, check=True, capture_output=True, timeout=300)
        return bundle.stat().st_size / MIB, "chalice package --stage prod + scripts/compile_bundle.py (fresh)"


# --- the benchmark ---------------------------------------------------------------------------------


def run(quick: bool) -> dict[str, Any]:
    """P2 and its raw figures (the harness's entry point); 1M items only in a full run."""
    runs = 3 if quick else 5
    sizes = ("100k",) if quick else ("100k", "1M")
    results: dict[str, dict[str, Any]] = {}
    with local_stack() as (s3_url, dynamodb_url, engine):
        for size in sizes:
            results[size] = measure_size(SIZES[size], runs, s3_url, dynamodb_url)
    bundle_mb, bundle_source = bundle_zip()

    def figure(size: str, name: str) -> Any:
        return results[size][name] if size in results else None

    def ratio(size: str, variant: str = "") -> float | None:
        return results[size][f"cold{variant}_s"] / results[size][f"floor{variant}_s"] if size in results else None

    return {
        "P2_cold_start_vs_floor": ratio("100k"),
        "P2_cold_start_vs_floor_1M": ratio("1M"),
        "cold_start_s_100k": figure("100k", "cold_s"),
        "floor_s_100k": figure("100k", "floor_s"),
        "cold_start_s_1M": figure("1M", "cold_s"),
        "floor_s_1M": figure("1M", "floor_s"),
        "model_npz_mb_100k": figure("100k", "npz_mb"),
        "model_npz_mb_1M": figure("1M", "npz_mb"),
        "runs": runs,
        "bundle_zip_mb": bundle_mb,
        "bundle_zip_source": bundle_source,
        "cold_start_dynamodb": engine,
        # The same medians without the interpreter's exit (last line to exit), which an instance never pays
        # before its first answer: tearing down botocore's loaded service models costs tenths of a second.
        "cold_start_vs_floor_before_exit_100k": ratio("100k", "_before_exit"),
        "cold_start_vs_floor_before_exit_1M": ratio("1M", "_before_exit"),
        "cold_start_samples_s": {size: result["samples_s"] for size, result in results.items()},
        "cold_start_breakdown": {size: {**result["breakdown"], "floor_median_run": result["floor_breakdown_s"],
                                        "setup_s": result["setup_s"]}
                                 for size, result in results.items()},
    }


def main(argv: list[str] | None = None) -> int:
    return standalone(run, __doc__, "100k items only, 3 runs", argv)


if __name__ == "__main__":
    raise SystemExit(main())
