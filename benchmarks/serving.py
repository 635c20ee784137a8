"""P1 and P3 of the benchmark suite: a user's recommendations against their floors, and what real time adds.

Run from the project root::

    .venv/bin/python -m benchmarks.serving            # 100 000 and 1 000 000 items
    .venv/bin/python -m benchmarks.serving --quick    # 100 000 items only, fewer requests (< 1 minute)

It prints the figures of :func:`run` as JSON (progress goes to stderr). The
suite's harness (``python -m benchmarks``) imports this module and calls
:func:`run` instead.

What is measured, all in this process with BLAS on one thread:

* **P1**: the p50 of ``GET /users/{id}/recommendations?n=10`` served by the
  app through ``chalice.test.Client`` (routing, key check, logs and metrics,
  JSON; no OpenAPI validation), real time off and the catalog empty, on a
  synthetic model of 100 000 (and 1 000 000) items x 64 random float32
  factors, divided by the p50 of

  - the bare numpy kernel on the same factors for the same users: ``Y @ x``,
    the user's seen items set to -inf, ``np.argpartition`` of the top 10,
    those 10 sorted;
  - implicit's single-user ``model.recommend(userid, user_items[userid], N=10)``
    on the same factors (``implicit.cpu.als.AlternatingLeastSquares``, one
    thread; ``user_items`` a CSR matrix of the seen items).

* **P3**: at 100 000 items, for users who each have 20 fresh events in the
  event log (written after the model's training cutoff), the p50 of the
  real-time answer (``REALTIME_EVENTS=50``: one DynamoDB Query, then ALS
  fold-in) divided by the p50 of the model-only answer (``REALTIME_EVENTS=0``);
  and the share of the real-time p50 that the DynamoDB read alone
  (``EventLog.recent``, timed by itself) takes.

Method: one warm-up pass over the users, then rounds that each take the next
of 200 users and run every variant once, the order rotating each round, so
drift affects all variants alike. S3 is moto; DynamoDB dynalite where Node.js
runs (moto otherwise); both are started here and stopped at the end.

The two configurations of P3 take turns in one process. The app's routes read
their :class:`Resources` through ``app_resources()``, which builds one per
process; each configuration's is built by the app itself (a first request
through its own stage file), and between requests :func:`resources_switch`
points the routes' ``app_resources`` at the one whose turn it is.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import quote

import numpy as np

from benchmarks.answers import CountingSink, settings_for, synthetic_artifact
from benchmarks.common import local_stack, standalone
from chalicelib.config import Settings
from chalicelib.eventlog.item import Event
from chalicelib.eventlog.log import EventLog
from chalicelib.models.artifact import ModelArtifact
from chalicelib.resources import Resources, app_resources, reset_app_resources
from tests.support import SECRET_KEY, write_stage_config

N = 10
FACTORS = 64
STAGE = "bench"
HEADERS = {"x-api-key": SECRET_KEY}
#: Users of the synthetic model, and how many of them the requests cycle over.
MODEL_USERS = 10_000
SEEN_PER_USER = 20
CYCLED_USERS = 200
#: P3: fresh events per measured user, and how many latest events the real-time answer reads.
FRESH_EVENTS = 20
REALTIME_EVENTS = 50
FRESH_EVENT_TYPES = ("view", "click", "view", "add_to_cart")
#: Events per ``EventLog.write`` call while loading the fresh events.
WRITE_CHUNK = 500
#: Measured requests per variant: (100 000 items, 1 000 000 items); None: not measured.
FULL_REQUESTS = (1500, 300)
QUICK_REQUESTS = (300, None)
SEED = 20261130


def say(message: str, started: float) -> None:
    """Progress, on stderr (stdout is the JSON answer when run alone)."""
    print(f"[serving {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def p50_ms(samples_ns: list[int]) -> float:
    return float(np.median(np.asarray(samples_ns, dtype=np.float64))) / 1e6


def blas_threads() -> int | None:
    """The largest thread count threadpoolctl sees among the loaded BLAS libraries (None: none seen)."""
    from threadpoolctl import threadpool_info

    counts = [entry["num_threads"] for entry in threadpool_info() if entry.get("user_api") == "blas"]
    return max(counts) if counts else None


# --- the app under test ----------------------------------------------------------------------------


@dataclass
class ServedApp:
    """The app behind ``chalice.test.Client`` for one stage configuration, and the Resources it built."""

    client: Any
    resources: Resources

    def recommendations(self, user_id: str) -> Any:
        return self.client.http.request("GET", f"/users/{quote(user_id, safe='')}/recommendations?n={N}",
                                        headers=HEADERS)


@contextlib.contextmanager
def served_app(settings: Settings, project_dir: Path, sink: CountingSink) -> Iterator[ServedApp]:
    """The app configured by a stage file for *settings*, its model loaded (first ``GET /health``)."""
    from chalice.test import Client

    import app

    write_stage_config(project_dir, STAGE, settings)
    reset_app_resources()
    with Client(app.app, stage_name=STAGE, project_dir=str(project_dir)) as client:
        with contextlib.redirect_stdout(sink):
            health = client.http.request("GET", "/health", headers=HEADERS)
        if health.status_code != 200:
            raise RuntimeError(f"/health answered {health.status_code}: {health.body[:300]!r}")
        yield ServedApp(client, app_resources())  # built by that first request, from the stage's environment


@contextlib.contextmanager
def resources_switch() -> Iterator[Callable[[Resources], None]]:
    """Yields ``use(resources)``: from then on the app's routes answer with *resources*.

    Replaces ``app_resources`` in the ``chalicelib.api`` modules that imported
    it by a function returning the chosen instance; restored on exit.
    """
    import chalicelib.resources as resources_module

    original = resources_module.app_resources
    modules = [module for name, module in list(sys.modules.items())
               if name.startswith("chalicelib.api") and getattr(module, "app_resources", None) is original]
    if not modules:
        raise RuntimeError("no chalicelib.api module reads app_resources(); the switch would do nothing")
    chosen: list[Resources] = []

    def current() -> Resources:
        return chosen[0]

    def use(resources: Resources) -> None:
        chosen[:] = [resources]

    for module in modules:
        module.app_resources = current
    try:
        yield use
    finally:
        for module in modules:
            module.app_resources = original


def publish(settings: Settings, artifact: ModelArtifact, sink: CountingSink) -> Resources:
    """Create the bucket and tables of *settings* and publish *artifact* as the live model."""
    resources = Resources(settings)
    resources.provision()
    with contextlib.redirect_stdout(sink):
        resources.model_registry.publish(artifact)
    return resources


def write_fresh_events(event_log: EventLog, users: list[str], item_ids: np.ndarray,
                       rng: np.random.Generator) -> None:
    """Store FRESH_EVENTS events for each of *users*, on distinct random items, timestamped in the last minute."""
    now = datetime.now(timezone.utc)
    events = []
    for user in users:
        items = rng.choice(item_ids.shape[0], FRESH_EVENTS, replace=False)
        for position, item in enumerate(items):
            events.append(Event(user_id=user, item_id=str(item_ids[item]),
                                event_type=FRESH_EVENT_TYPES[position % len(FRESH_EVENT_TYPES)],
                                event_id=f"bench-{user}-{position}",
                                timestamp=now - timedelta(seconds=FRESH_EVENTS - position)))
    for start in range(0, len(events), WRITE_CHUNK):
        receipt = event_log.write(events[start:start + WRITE_CHUNK])
        if receipt.failed or receipt.duplicates:
            raise RuntimeError(f"fresh events not stored: {len(receipt.failed)} failed, "
                               f"{len(receipt.duplicates)} duplicates")


# --- the baselines ---------------------------------------------------------------------------------


class Floors:
    """The bare numpy kernel and implicit's ``recommend`` on a loaded model's factors, for the cycled users."""

    def __init__(self, artifact: ModelArtifact, users: list[str]) -> None:
        from implicit.cpu.als import AlternatingLeastSquares
        from scipy.sparse import csr_matrix

        self.item_factors = artifact.item_factors
        user_row = {user_id: row for row, user_id in enumerate(artifact.user_ids.tolist())}
        self.rows = {user: user_row[user] for user in users}
        indptr, indices = artifact.seen_indptr, artifact.seen_indices
        self.seen = {user: indices[indptr[row]:indptr[row + 1]] for user, row in self.rows.items()}
        self.vectors = {user: artifact.user_factors[row] for user, row in self.rows.items()}
        self.model = AlternatingLeastSquares(factors=FACTORS, num_threads=1, random_state=0)
        self.model.user_factors = artifact.user_factors
        self.model.item_factors = artifact.item_factors
        self.user_items = csr_matrix((np.ones(indices.shape[0], dtype=np.float32), indices, indptr),
                                     shape=(artifact.n_users, artifact.n_items))

    def numpy(self, user: str) -> np.ndarray:
        scores = self.item_factors @ self.vectors[user]
        scores[self.seen[user]] = -np.inf
        top = np.argpartition(-scores, N)[:N]
        return top[np.argsort(-scores[top])]

    def implicit(self, user: str) -> np.ndarray:
        row = self.rows[user]
        ids, _ = self.model.recommend(row, self.user_items[row], N=N)
        return ids


def check_agreement(floors: Floors, app: ServedApp, users: list[str], sink: CountingSink) -> tuple[int, int]:
    """How many of *users* get the same 10 items from the app as from numpy, and from implicit as from numpy."""
    item_ids = app.resources.live_model.recommender().artifact.item_ids
    app_agrees = implicit_agrees = 0
    for user in users:
        expected = item_ids[floors.numpy(user)].tolist()
        with contextlib.redirect_stdout(sink):
            body = json.loads(app.recommendations(user).body)
        app_agrees += [item["item_id"] for item in body["items"]] == expected
        implicit_agrees += item_ids[floors.implicit(user)].tolist() == expected
    return app_agrees, implicit_agrees


# --- measurement -----------------------------------------------------------------------------------


@dataclass
class Variant:
    """One kind of timed call: *call(user)*, with *before()* run untimed just ahead of it."""

    call: Callable[[str], Any]
    before: Callable[[], None] = lambda: None
    check: Callable[[Any], None] = lambda answer: None


def interleaved(variants: dict[str, Variant], users: list[str], rounds: int) -> dict[str, list[int]]:
    """*rounds* rounds, each timing every variant once for the next user, the order rotating; samples in ns."""
    names = list(variants)
    samples: dict[str, list[int]] = {name: [] for name in names}
    for round_number in range(rounds):
        user = users[round_number % len(users)]
        shift = round_number % len(names)
        for name in names[shift:] + names[:shift]:
            variant = variants[name]
            variant.before()
            began = time.perf_counter_ns()
            answer = variant.call(user)
            samples[name].append(time.perf_counter_ns() - began)
            variant.check(answer)
    return samples


def http_check(strategy: str) -> Callable[[Any], None]:
    """Fails unless an answer is a 200 of *strategy* with N items."""
    def check(response: Any) -> None:
        if response.status_code != 200:
            raise RuntimeError(f"answer {response.status_code}: {response.body[:300]!r}")
        body = json.loads(response.body)
        if body["strategy"] != strategy or len(body["items"]) != N:
            raise RuntimeError(f"expected {N} items by {strategy!r}, got {len(body['items'])} by {body['strategy']!r}")
    return check


def measure(variants: dict[str, Variant], users: list[str], rounds: int, sink: CountingSink) -> dict[str, float]:
    """One warm-up pass over *users*, then *rounds* measured rounds; the p50 of each variant in ms."""
    with contextlib.redirect_stdout(sink):
        interleaved(variants, users, len(users))
        gc.collect()
        samples = interleaved(variants, users, rounds)
    return {name: p50_ms(values) for name, values in samples.items()}


def pick_users(artifact: ModelArtifact) -> list[str]:
    return [str(user) for user in np.random.default_rng(7).choice(artifact.user_ids, CYCLED_USERS, replace=False)]


def run_100k(s3_url: str, dynamodb_url: str, rounds: int, sink: CountingSink, started: float) -> dict[str, float]:
    """P1 and P3 at 100 000 items: model-only and real-time answers, numpy, implicit and the DynamoDB read."""
    rng = np.random.default_rng(SEED)
    artifact = synthetic_artifact(rng, 100_000, MODEL_USERS, FACTORS, SEEN_PER_USER)
    users = pick_users(artifact)
    model_only = settings_for(s3_url, dynamodb_url)
    realtime = replace(model_only, realtime_events=REALTIME_EVENTS)
    resources = publish(realtime, artifact, sink)
    say("100k: model published; writing fresh events", started)
    write_fresh_events(resources.event_log, users, artifact.item_ids, rng)
    del artifact, resources
    project = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    try:
        with served_app(realtime, project / "realtime", sink) as on, \
                served_app(model_only, project / "model-only", sink) as off, \
                resources_switch() as use:
            floors = Floors(off.resources.live_model.recommender().artifact, users)
            use(off.resources)
            app_agrees, implicit_agrees = check_agreement(floors, off, users, sink)
            say(f"100k: apps loaded; same top {N} as numpy: app {app_agrees}/{len(users)}, "
                f"implicit {implicit_agrees}/{len(users)}; measuring {rounds} rounds", started)
            event_log = on.resources.event_log
            variants = {
                "model_only": Variant(off.recommendations, lambda: use(off.resources), http_check("personalized")),
                "realtime": Variant(on.recommendations, lambda: use(on.resources), http_check("realtime")),
                "numpy": Variant(floors.numpy),
                "implicit": Variant(floors.implicit),
                "dynamodb_read": Variant(lambda user: event_log.recent(user, REALTIME_EVENTS),
                                         check=_check_history),
            }
            result = measure(variants, users, rounds, sink)
    finally:
        reset_app_resources()
        shutil.rmtree(project, ignore_errors=True)
    say("100k: " + ", ".join(f"{name} {value:.3f} ms" for name, value in result.items()), started)
    return result


def _check_history(history: Any) -> None:
    if len(history.events) != FRESH_EVENTS:
        raise RuntimeError(f"expected {FRESH_EVENTS} fresh events, read {len(history.events)}")


def run_1m(s3_url: str, dynamodb_url: str, rounds: int, sink: CountingSink, started: float) -> dict[str, float]:
    """P1 at 1 000 000 items: the model-only answer, numpy and implicit."""
    rng = np.random.default_rng(SEED + 1)
    artifact = synthetic_artifact(rng, 1_000_000, MODEL_USERS, FACTORS, SEEN_PER_USER)
    users = pick_users(artifact)
    say("1M: model generated", started)
    settings = settings_for(s3_url, dynamodb_url)
    publish(settings, artifact, sink)
    del artifact
    gc.collect()
    say("1M: model published", started)
    project = Path(tempfile.mkdtemp(prefix="bench-serving-1m-"))
    try:
        with served_app(settings, project, sink) as off:
            say("1M: model loaded by the app", started)
            floors = Floors(off.resources.live_model.recommender().artifact, users)
            app_agrees, implicit_agrees = check_agreement(floors, off, users[:20], sink)
            say(f"1M: same top {N} as numpy: app {app_agrees}/20, implicit {implicit_agrees}/20; "
                f"measuring {rounds} rounds", started)
            variants = {
                "model_only": Variant(off.recommendations, check=http_check("personalized")),
                "numpy": Variant(floors.numpy),
                "implicit": Variant(floors.implicit),
            }
            result = measure(variants, users, rounds, sink)
    finally:
        reset_app_resources()
        shutil.rmtree(project, ignore_errors=True)
    say("1M: " + ", ".join(f"{name} {value:.3f} ms" for name, value in result.items()), started)
    return result


def run(quick: bool) -> dict[str, Any]:
    """Measure P1 and P3; the figures, times in ms (p50), the 1M ones None when *quick*."""
    started = time.perf_counter()
    rounds_100k, rounds_1m = QUICK_REQUESTS if quick else FULL_REQUESTS
    sink = CountingSink()  # the app's log line and metrics blob of each request
    with local_stack() as (s3_url, dynamodb_url, engine):
        try:
            say(f"S3 on moto {s3_url}, DynamoDB on {engine} {dynamodb_url}", started)
            small = run_100k(s3_url, dynamodb_url, rounds_100k, sink, started)
            gc.collect()
            large = run_1m(s3_url, dynamodb_url, rounds_1m, sink, started) if rounds_1m else None
        finally:
            reset_app_resources()
    say(f"done in {time.perf_counter() - started:.0f} s", started)

    def ratio(top: float | None, bottom: float | None) -> float | None:
        return None if top is None or bottom is None else top / bottom

    big = large or {}
    return {
        "P1_serving_vs_numpy": ratio(small["model_only"], small["numpy"]),
        "P1_serving_vs_numpy_1M": ratio(big.get("model_only"), big.get("numpy")),
        "P1_serving_vs_implicit": ratio(small["model_only"], small["implicit"]),
        "P1_serving_vs_implicit_1M": ratio(big.get("model_only"), big.get("implicit")),
        "P3_realtime_vs_model_only": ratio(small["realtime"], small["model_only"]),
        "P3_dynamodb_read_share": ratio(small["dynamodb_read"], small["realtime"]),
        "serving_p50_ms_100k": small["model_only"],
        "numpy_p50_ms_100k": small["numpy"],
        "implicit_p50_ms_100k": small["implicit"],
        "serving_p50_ms_1M": big.get("model_only"),
        "numpy_p50_ms_1M": big.get("numpy"),
        "implicit_p50_ms_1M": big.get("implicit"),
        "realtime_p50_ms_100k": small["realtime"],
        "model_only_p50_ms_100k": small["model_only"],
        "dynamodb_read_p50_ms_100k": small["dynamodb_read"],
        "requests_per_variant": {"100k": rounds_100k, "1M": rounds_1m},
        "blas_threads": blas_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    return standalone(run, __doc__, f"{QUICK_REQUESTS[0]} requests per variant, 100 000 items only", argv)


if __name__ == "__main__":
    raise SystemExit(main())
