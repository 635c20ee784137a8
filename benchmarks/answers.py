"""What a rich answer costs: catalog fields, a category filter and ``explain=true``, against a plain one.

Run from the project root::

    .venv/bin/python -m benchmarks.answers            # about 3 to 6 minutes
    .venv/bin/python -m benchmarks.answers --quick    # a smoke run: fewer requests, a smaller synthetic model

It starts its own local AWS (moto for S3; dynalite for DynamoDB where Node.js
runs, moto otherwise), and for two setups

* ``movielens``: the demo model (ALS, default parameters, MovieLens-100k,
  1 682 items) and the MovieLens catalog;
* ``synthetic``: 100 000 items x 64 random float32 factors, 10 000 users
  with about 20 seen items each (power-law popularity), and a 100 000-item
  catalog (1 to 3 of 30 categories each, prices, ~5 % unavailable, ~1 % blocked),

serves ``GET /users/{id}/recommendations?n=10`` in-process through
``chalice.test.Client`` (no HTTP socket, no OpenAPI validation of answers) in
three variants: plain (no query parameters), ``category=<one about 1/30 of
items have>``, and ``category=...&explain=true``. Real-time events are off
(``REALTIME_EVENTS=0``) and the catalog TTL is an hour, so after the warm-up
pass no request reaches DynamoDB or S3: what is measured is the instance's
own work. Beside the HTTP-level figures it times the same answers one layer
down (``Answers.for_user``, no routing, auth, logs or JSON), the recommender
alone, and the bare numpy kernel (``Y @ x``, seen items out, argpartition of
the top 10) as the physical floor. Every kind of request is interleaved
round-robin (the order rotating each round) so drift affects them all alike.

It prints markdown tables and writes ``benchmarks/answers.json`` with every
sample. BLAS runs on one thread (as on a one-vCPU Lambda).
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _variable in BLAS_THREAD_VARIABLES:
    os.environ[_variable] = "1"  # before numpy is imported, or BLAS has already started its threads

import argparse  # noqa: E402
import contextlib  # noqa: E402
import cProfile  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import pstats  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable  # noqa: E402
from urllib.parse import quote  # noqa: E402

import numpy as np  # noqa: E402

from chalicelib.catalog.index import CatalogIndex  # noqa: E402
from chalicelib.catalog.item import CatalogItem, Price  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.models.artifact import ModelArtifact, make_artifact  # noqa: E402
from chalicelib.resources import Resources, app_resources, reset_app_resources  # noqa: E402
from chalicelib.serving.filters import ItemFilter, ModelView  # noqa: E402
from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason  # noqa: E402
from tests.support import SECRET_KEY, TEST_KEYS, write_stage_config  # noqa: E402

OUTPUT = Path(__file__).resolve().with_name("answers.json")
N = 10
STAGE = "bench"
#: Catalog items per ``Catalog.put`` call while loading (it splits them into BatchWriteItem calls of 25).
LOAD_CHUNK = 1000

CATEGORY_NAMES = (
    "Books", "Music", "Films", "Games", "Toys", "Garden", "Kitchen", "Bath", "Bedding", "Lighting",
    "Tools", "Sports", "Outdoor", "Camping", "Cycling", "Running", "Fitness", "Beauty", "Health", "Baby",
    "Pets", "Office", "Computers", "Phones", "Audio", "Cameras", "Watches", "Jewellery", "Shoes", "Bags",
)
ADJECTIVES = ("Compact", "Classic", "Deluxe", "Essential", "Foldable", "Lightweight", "Modern", "Vintage", "Wireless",
              "Portable", "Rugged", "Smart", "Organic", "Premium", "Recycled", "Slim", "Sturdy", "Quiet", "Rapid",
              "Cosy")
NOUNS = ("Lamp", "Kettle", "Backpack", "Speaker", "Chair", "Blanket", "Mug", "Drill", "Tent", "Jacket", "Bottle",
         "Notebook", "Headphones", "Clock", "Shelf", "Pillow", "Knife", "Helmet", "Scarf", "Wallet", "Router",
         "Camera", "Ball", "Puzzle", "Brush")


# --- setups ----------------------------------------------------------------------------------------


@dataclass
class Setup:
    """A model and the catalog beside it."""

    name: str
    description: str
    artifact: ModelArtifact
    #: The catalog's items; None: the MovieLens file, through the import the demo uses.
    items: list[CatalogItem] | None


def movielens_setup() -> tuple[Setup, float]:
    """The demo model (trained here) and the MovieLens catalog; and the training time."""
    from chalicelib.training.als import AlsParameters
    from chalicelib.training.train import train_sample_model

    started = time.perf_counter()
    artifact = train_sample_model(AlsParameters())
    return (Setup("movielens", "demo ALS model, MovieLens-100k, default AlsParameters", artifact, None),
            time.perf_counter() - started)


def synthetic_artifact(rng: np.random.Generator, n_items: int, n_users: int, n_factors: int,
                       seen_per_user: int) -> ModelArtifact:
    """Random float32 factors; each user saw ~*seen_per_user* items drawn by a power-law popularity."""
    rank = rng.permutation(n_items)
    weights = 1.0 / (rank + 1.0) ** 0.9
    p = weights / weights.sum()
    counts = np.clip(rng.poisson(seen_per_user, n_users), 1, None)
    draws = rng.choice(n_items, size=(n_users, 3 * seen_per_user + 20), p=p)
    rows = []
    for user, count in enumerate(counts):
        unique = np.unique(draws[user])
        rows.append(np.sort(rng.permutation(unique)[:count]))
    lengths = np.array([row.shape[0] for row in rows])
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = np.concatenate(rows)
    return make_artifact(
        item_factors=(rng.standard_normal((n_items, n_factors), dtype=np.float32) * 0.1),
        user_factors=(rng.standard_normal((n_users, n_factors), dtype=np.float32) * 0.1),
        user_ids=[f"u{user:05d}" for user in range(n_users)],
        item_ids=[f"p{item:06d}" for item in range(n_items)],
        item_popularity=np.bincount(indices, minlength=n_items).astype(np.float32),
        seen_indptr=indptr,
        seen_indices=indices,
        algorithm="synthetic",
        hyperparameters={"regularization": 1.0, "alpha": 1.0},
        training_cutoff="2026-01-01T00:00:00+00:00",
    )


def synthetic_catalog(rng: np.random.Generator, item_ids: list[str]) -> list[CatalogItem]:
    """One catalog item per model item: a title, 1 to 3 of 30 categories (Zipf-like shares), a price,
    ~5 % unavailable, ~1 % blocked, a brand attribute."""
    n = len(item_ids)
    category_weights = 1.0 / (np.arange(len(CATEGORY_NAMES)) + 1.0) ** 1.1
    # Weighted sampling without replacement, vectorised: the k largest of log(w) + Gumbel noise.
    keys = np.log(category_weights)[None, :] + rng.gumbel(size=(n, len(CATEGORY_NAMES)))
    order = np.argsort(-keys, axis=1)[:, :3]
    how_many = rng.integers(1, 4, n)
    adjectives = rng.integers(0, len(ADJECTIVES), n)
    nouns = rng.integers(0, len(NOUNS), n)
    prices = np.round(rng.lognormal(3.0, 0.8, n), 2)
    available = rng.random(n) >= 0.05
    blocked = rng.random(n) < 0.01
    brands = rng.integers(0, 200, n)
    items = []
    for row, item_id in enumerate(item_ids):
        items.append(CatalogItem(
            item_id=item_id,
            title=f"{ADJECTIVES[adjectives[row]]} {NOUNS[nouns[row]]} {item_id.upper()}",
            url=f"https://shop.example/p/{item_id}",
            image_url=f"https://img.shop.example/{item_id}.jpg",
            categories=tuple(CATEGORY_NAMES[c] for c in order[row, :how_many[row]]),
            price=Price(float(prices[row]), "EUR"),
            available=bool(available[row]),
            blocked=bool(blocked[row]),
            attributes={"brand": f"Brand {brands[row]:03d}"},
        ))
    return items


def synthetic_setup(n_items: int, n_users: int, n_factors: int, seen_per_user: int) -> tuple[Setup, float]:
    started = time.perf_counter()
    rng = np.random.default_rng(20261130)
    artifact = synthetic_artifact(rng, n_items, n_users, n_factors, seen_per_user)
    items = synthetic_catalog(rng, artifact.item_ids.tolist())
    description = (f"random float32 factors, {n_items:,} items x {n_factors} factors, {n_users:,} users "
                   f"(~{seen_per_user} seen items each, power-law popularity)")
    return Setup("synthetic", description, artifact, items), time.perf_counter() - started


# --- helpers ---------------------------------------------------------------------------------------


class CountingSink:
    """Where the app's stdout goes while measuring: its per-request log line and metrics blob, counted."""

    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, text: str) -> int:
        self.bytes += len(text)
        self.writes += 1
        return len(text)

    def flush(self) -> None:
        pass


def percentile(samples_ns: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(samples_ns, dtype=np.float64), q)) / 1e6


def summary(samples_ns: list[int]) -> dict[str, float]:
    array = np.asarray(samples_ns, dtype=np.float64) / 1e6
    return {"n": int(array.size), "p50_ms": float(np.percentile(array, 50)), "p90_ms": float(np.percentile(array, 90)),
            "p99_ms": float(np.percentile(array, 99)), "mean_ms": float(array.mean()), "min_ms": float(array.min())}


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gb = None
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = round(int(line.split()[1]) / 1024 / 1024, 1)
    blas = []
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        blas = [{"api": entry.get("internal_api"), "threads": entry.get("num_threads"),
                 "version": entry.get("version")} for entry in threadpool_info()]
    return {
        "cpu_model": model, "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gb": memory_gb, "python": platform.python_version(), "numpy": np.__version__,
        "platform": platform.platform(), "blas": blas,
        "blas_thread_variables": {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES},
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def settings_for(s3_url: str, dynamodb_url: str) -> Settings:
    """Like tests/conftest.py's ``settings``: fresh names, the test keys, generous timeouts; no real-time
    read, an hour-long catalog TTL and no model refresh during the run."""
    suffix = uuid.uuid4().hex[:12]
    return Settings(
        model_bucket=f"bench-models-{suffix}", model_prefix="models", events_table=f"bench-events-{suffix}",
        region="us-east-1", s3_endpoint_url=s3_url, dynamodb_endpoint_url=dynamodb_url,
        model_refresh_seconds=3600.0, log_level="INFO", event_retry_base_seconds=0.001,
        realtime_events=0, realtime_timeout_seconds=5.0, catalog_cache_seconds=3600.0,
        aws_connect_timeout_seconds=2.0, aws_read_timeout_seconds=10.0, request_deadline_seconds=25.0,
        **TEST_KEYS,
    )


def load_catalog(resources: Resources, items: list[CatalogItem], workers: int) -> None:
    chunks = [items[start:start + LOAD_CHUNK] for start in range(0, len(items), LOAD_CHUNK)]
    resources.catalog.put(chunks[0])  # builds the connection once, before threads share it
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for _ in pool.map(resources.catalog.put, chunks[1:]):
            pass


def load_setup_catalog(setup: Setup, resources: Resources, args: argparse.Namespace, one_off: dict[str, Any]) -> None:
    """Write *setup*'s catalog into the table, timed."""
    started = time.perf_counter()
    if setup.items is None:
        from chalicelib.catalog.formats import import_file
        from local_aws.demo import SAMPLE_CATALOG

        imported = import_file(SAMPLE_CATALOG, "movielens-100k", resources.catalog)
        if imported.rejected:
            raise RuntimeError(f"the MovieLens catalog import rejected rows: {imported}")
        one_off["catalog_load_how"] = "chalicelib.catalog.formats.import_file (validation + chunks of 100)"
    else:
        load_catalog(resources, setup.items, args.load_workers)
        one_off["catalog_load_how"] = (f"Catalog.put in chunks of {LOAD_CHUNK}, {args.load_workers} threads "
                                       "(BatchWriteItem calls of 25)")
    one_off["catalog_load_s"] = time.perf_counter() - started


def raw_scan_seconds(settings: Settings) -> tuple[float, int]:
    """The catalog table's full Scan with a plain botocore client (wire + JSON parsing, no pynamodb records)."""
    import boto3

    client = boto3.session.Session().client("dynamodb", region_name=settings.region,
                                            endpoint_url=settings.dynamodb_endpoint_url)
    started = time.perf_counter()
    pages = 0
    for _ in client.get_paginator("scan").paginate(TableName=settings.catalog_table_name):
        pages += 1
    return time.perf_counter() - started, pages


def pick_category(items: list[CatalogItem], target: float = 1 / 30) -> tuple[str, float]:
    """The category whose share of the catalog is nearest *target* (by ratio)."""
    counts = Counter(category for item in items for category in set(item.categories))
    name = min(counts, key=lambda c: (abs(np.log(counts[c] / len(items) / target)), c))
    return name, counts[name] / len(items)


def deep_nbytes_of_index(index: CatalogIndex) -> dict[str, int]:
    """Rough sizes of a CatalogIndex's parts (numpy buffers plus Python containers and id strings)."""
    by_category = sum(rows.nbytes for rows in index._by_category.values())
    by_word = sum(rows.nbytes + 112 for rows in index._by_word)  # + the ndarray header
    vocabulary = sum(sys.getsizeof(word) for word in index._vocabulary) + sys.getsizeof(index._vocabulary)
    ids = sum(sys.getsizeof(item_id) for item_id in index.item_ids) + sys.getsizeof(index.item_ids)
    flags = index.available.nbytes + index.blocked.nbytes + index.prices.nbytes
    return {"flags_and_prices": flags, "by_category": by_category, "by_word_rows": by_word,
            "vocabulary": vocabulary, "vocabulary_words": len(index._vocabulary), "item_ids": ids}


def model_view_nbytes(view: ModelView) -> int:
    return sum(getattr(view, name).nbytes for name in ("model_row", "catalog_row", "blocked", "unavailable", "prices"))


# --- one setup -------------------------------------------------------------------------------------


def run_setup(setup: Setup, s3_url: str, dynamodb_url: str, args: argparse.Namespace, out: Any) -> dict[str, Any]:
    from chalice.test import Client

    import app

    def say(message: str) -> None:
        print(f"[{setup.name}] {message}", file=out, flush=True)

    result: dict[str, Any] = {"name": setup.name, "description": setup.description, "model": {
        "items": setup.artifact.n_items, "users": setup.artifact.n_users, "factors": setup.artifact.n_factors,
        "interactions": setup.artifact.n_interactions}}
    one_off: dict[str, Any] = {}
    settings = settings_for(s3_url, dynamodb_url)
    resources = Resources(settings)
    resources.provision()

    sink = CountingSink()  # the library's log lines (JSON on stdout once the app has configured them)
    with contextlib.redirect_stdout(sink):
        started = time.perf_counter()
        resources.model_registry.publish(setup.artifact)
        one_off["publish_model_s"] = time.perf_counter() - started
        load_setup_catalog(setup, resources, args, one_off)
    say(f"model published in {one_off['publish_model_s']:.1f} s, catalog loaded in {one_off['catalog_load_s']:.1f} s")

    project = Path(tempfile.mkdtemp(prefix=f"bench-{setup.name}-"))
    write_stage_config(project, STAGE, settings)
    reset_app_resources()
    headers = {"x-api-key": SECRET_KEY}
    with Client(app.app, stage_name=STAGE, project_dir=str(project)) as client:
        http = client.http

        def get(path: str) -> Any:
            return http.request("GET", path, headers=headers)

        # Cold start, in its parts: the model (S3 download + checks), then the first answer
        # (the catalog index: a full scan of the catalog table; then the answer's catalog read).
        with contextlib.redirect_stdout(sink):
            started = time.perf_counter()
            health = get("/health")
            one_off["cold_model_load_s"] = time.perf_counter() - started
            if health.status_code != 200:
                raise RuntimeError(f"/health answered {health.status_code}: {health.body[:300]!r}")
            resources_in_app = app_resources()
            recommender = resources_in_app.live_model.recommender()
            users = [str(user) for user in np.random.default_rng(7).choice(recommender.artifact.user_ids, args.users,
                                                                                  replace=False)]
            started = time.perf_counter()
            first = get(f"/users/{quote(users[0], safe='')}/recommendations?n={N}")
            one_off["first_answer_with_index_build_s"] = time.perf_counter() - started
            if first.status_code != 200:
                raise RuntimeError(f"first answer {first.status_code}: {first.body[:300]!r}")
        say(f"cold model load {one_off['cold_model_load_s']:.2f} s; first answer (index build) "
            f"{one_off['first_answer_with_index_build_s']:.2f} s")

        # The index rebuild, apart: the scan alone, then CatalogIndex over its items, then the model view.
        started = time.perf_counter()
        items = resources_in_app.catalog.all_items()
        one_off["scan_all_items_s"] = time.perf_counter() - started
        one_off["catalog_items"] = len(items)
        one_off["scan_raw_botocore_s"], one_off["scan_raw_pages"] = raw_scan_seconds(settings)
        builds = []
        for _ in range(3):
            started = time.perf_counter()
            index = CatalogIndex(items)
            builds.append(time.perf_counter() - started)
        one_off["catalog_index_build_s"] = builds
        started = time.perf_counter()
        view = ModelView(index, recommender)
        one_off["model_view_build_s"] = time.perf_counter() - started
        say(f"scan {one_off['scan_all_items_s']:.2f} s ({len(items):,} items; the same Scan with botocore alone "
            f"{one_off['scan_raw_botocore_s']:.2f} s), CatalogIndex(items) "
            f"{min(builds):.2f} s (best of 3), model view {one_off['model_view_build_s']:.3f} s")

        # Memory: what the index keeps, and the peak of a rebuild (the scanned items are transient).
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        scanned = resources_in_app.catalog.all_items()
        after_scan = tracemalloc.get_traced_memory()[0]
        measured_index = CatalogIndex(scanned)
        del scanned
        gc.collect()
        kept = tracemalloc.get_traced_memory()[0]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        one_off["memory"] = {
            "index_retained_bytes_tracemalloc": kept - before,
            "scanned_items_bytes_tracemalloc": after_scan - before,
            "rebuild_peak_bytes_tracemalloc": peak - before,
            "index_parts_bytes": deep_nbytes_of_index(measured_index),
            "model_view_bytes": model_view_nbytes(view),
        }
        del measured_index, items, index, view
        gc.collect()

        catalog_items = setup.items if setup.items is not None else resources_in_app.catalog.all_items()
        category, share = pick_category(catalog_items)
        result["category"] = {"name": category, "share_of_catalog": share}
        del catalog_items
        say(f"category filter: {category!r} ({share:.2%} of the catalog)")

        # What each measured operation does, for one user.
        answers = resources_in_app.answers
        filters = resources_in_app.item_filters
        plain_filter, category_filter = ItemFilter(), ItemFilter(categories=(category,))
        artifact = recommender.artifact
        item_factors = artifact.item_factors
        category_mask = filters.allowed(recommender, category_filter)
        plain_mask = filters.allowed(recommender, plain_filter)
        result["allowed_share"] = {"plain": float(plain_mask.mean()), "category": float(category_mask.mean())}
        user_rows = {user: int(np.flatnonzero(artifact.user_ids == user)[0]) for user in users}
        seen = {user: artifact.seen_indices[artifact.seen_indptr[row]:artifact.seen_indptr[row + 1]]
                for user, row in user_rows.items()}
        vectors = {user: artifact.user_factors[row] for user, row in user_rows.items()}
        category_query = quote(category, safe="")

        def kernel(user: str) -> np.ndarray:
            scores = item_factors @ vectors[user]
            scores[seen[user]] = -np.inf
            top = np.argpartition(-scores, N)[:N]
            return top[np.argsort(-scores[top])]

        def kernel_masked(user: str) -> np.ndarray:
            scores = item_factors @ vectors[user]
            scores[seen[user]] = -np.inf
            scores[~category_mask] = -np.inf
            top = np.argpartition(-scores, N)[:N]
            return top[np.argsort(-scores[top])]

        def http_call(query: str) -> Callable[[str], Any]:
            def call(user: str) -> Any:
                response = get(f"/users/{quote(user, safe='')}/recommendations?{query}")
                if response.status_code != 200:
                    raise RuntimeError(f"{query}: {response.status_code} {response.body[:300]!r}")
                return response
            return call

        operations: dict[str, Callable[[str], Any]] = {
            "http plain": http_call(f"n={N}"),
            "http category": http_call(f"n={N}&category={category_query}"),
            "http category+explain": http_call(f"n={N}&category={category_query}&explain=true"),
            "answers plain": lambda user: answers.for_user(user, N, plain_filter, False),
            "answers category": lambda user: answers.for_user(user, N, category_filter, False),
            "answers category+explain": lambda user: answers.for_user(user, N, category_filter, True),
            "recommender plain": lambda user: recommender.recommend(recommender.profile_for_user(user), N,
                                                                    filters.allowed(recommender, plain_filter)),
            "recommender category": lambda user: recommender.recommend(recommender.profile_for_user(user), N,
                                                                       filters.allowed(recommender, category_filter)),
            "kernel": kernel,
            "kernel + category mask": kernel_masked,
        }

        # Warm-up: one full pass (fills the catalog cache with every item these answers show or name).
        started = time.perf_counter()
        shapes: dict[str, Counter] = {name: Counter() for name in operations if name.startswith("http")}
        body_bytes: dict[str, list[int]] = {name: [] for name in shapes}
        with contextlib.redirect_stdout(sink):
            for user in users:
                for name, operation in operations.items():
                    answer = operation(user)
                    if name in shapes:
                        body = json.loads(answer.body)
                        shapes[name][(body["strategy"], len(body["items"]),
                                      all("reason" in item for item in body["items"]))] += 1
                        body_bytes[name].append(len(answer.body))
        one_off["warm_up_pass_s"] = time.perf_counter() - started
        result["answers_seen_in_warm_up"] = {
            name: {"strategy_items_reasons": {f"{k[0]}/{k[1]} items/reasons={k[2]}": v for k, v in shape.items()},
                   "mean_body_bytes": float(np.mean(body_bytes[name]))}
            for name, shape in shapes.items()}
        say(f"warm-up pass {one_off['warm_up_pass_s']:.1f} s; measuring {args.requests} of each, interleaved")

        # Measurement: every round takes the next user and runs every operation, the order rotating.
        names = list(operations)
        samples: dict[str, list[int]] = {name: [] for name in names}
        gc.collect()
        sink.bytes = sink.writes = 0
        started = time.perf_counter()
        with contextlib.redirect_stdout(sink):
            for round_number in range(args.requests):
                user = users[round_number % len(users)]
                shift = round_number % len(names)
                for name in names[shift:] + names[:shift]:
                    operation = operations[name]
                    began = time.perf_counter_ns()
                    operation(user)
                    samples[name].append(time.perf_counter_ns() - began)
        one_off["measurement_s"] = time.perf_counter() - started
        http_requests = sum(len(samples[name]) for name in shapes)
        one_off["stdout_bytes_per_http_request"] = sink.bytes / http_requests
        result["latency"] = {name: summary(values) for name, values in samples.items()}
        result["samples_us"] = {name: [round(value / 1e3, 1) for value in values] for name, values in samples.items()}

        # The top-k selection alone, as ranking.best_k does it (np.partition of the float64 scores with
        # the excluded entries at -inf): how it reacts to the share of -inf entries.
        selection: dict[str, list[int]] = {"partition, plain mask": [], "partition, category mask": [],
                                           "partition of the category's candidates only": []}
        for round_number in range(args.requests):
            user = users[round_number % len(users)]
            scores = (item_factors @ vectors[user]).astype(np.float64)
            scores[seen[user]] = -np.inf
            plain_scores = np.where(plain_mask, scores, -np.inf)
            category_scores = np.where(category_mask, scores, -np.inf)
            size = scores.shape[0]
            began = time.perf_counter_ns()
            np.partition(plain_scores, size - N)
            selection["partition, plain mask"].append(time.perf_counter_ns() - began)
            began = time.perf_counter_ns()
            np.partition(category_scores, size - N)
            selection["partition, category mask"].append(time.perf_counter_ns() - began)
            began = time.perf_counter_ns()
            candidates = np.flatnonzero(category_scores > -np.inf)
            np.partition(category_scores[candidates], max(candidates.shape[0] - N, 0))
            selection["partition of the category's candidates only"].append(time.perf_counter_ns() - began)
        result["selection"] = {name: summary(values) for name, values in selection.items()}

        # Profile of the rich request.
        profiler = cProfile.Profile()
        with contextlib.redirect_stdout(sink):
            rich = operations["http category+explain"]
            profiler.enable()
            for round_number in range(args.profile_requests):
                rich(users[round_number % len(users)])
            profiler.disable()
        result["profile"] = profile_summary(profiler, args.profile_requests)
    reset_app_resources()
    shutil.rmtree(project, ignore_errors=True)
    result["one_off"] = one_off
    return result


#: Functions whose cumulative time per request the report names (file suffix, function name).
PROFILE_POINTS = (
    ("chalice/local.py", "handle_request", "chalice LocalGateway.handle_request (whole request)"),
    ("chalice/test.py", "_patched_env_vars", "chalice test client: copy of os.environ per request"),
    ("chalicelib/api/routing.py", "guarded", "our route guard (auth + view + logs)"),
    ("chalicelib/access/control.py", "authorize", "authorize (key hash lookup)"),
    ("chalicelib/api/validation.py", "parse_filter_query", "parse_filter_query"),
    ("chalicelib/serving/answers.py", "for_user", "Answers.for_user"),
    ("chalicelib/serving/filters.py", "allowed", "ItemFilters.allowed (masks)"),
    ("chalicelib/catalog/index.py", "rows_in_categories", "CatalogIndex.rows_in_categories"),
    ("chalicelib/serving/personalizer.py", "profile", "Personalizer.profile"),
    ("chalicelib/serving/recommender.py", "recommend", "Recommender.recommend"),
    ("chalicelib/serving/ranking.py", "top_n", "ranking.top_n"),
    ("chalicelib/serving/ranking.py", "best_k", "ranking.best_k"),
    ("chalicelib/serving/answers.py", "_context", "Answers._context (explain: blocked history)"),
    ("chalicelib/serving/presenter.py", "present", "presenter.present"),
    ("chalicelib/serving/explain.py", "__init__", "Explainer.__init__ (contributors)"),
    ("chalicelib/serving/recommender.py", "contributors", "Recommender.contributors"),
    ("chalicelib/serving/ranking.py", "score_contributions", "ranking.score_contributions"),
    ("chalicelib/catalog/cache.py", "items", "CatalogCache.items"),
    ("chalicelib/catalog/item.py", "to_json", "CatalogItem.to_json"),
    ("chalicelib/telemetry.py", "log_request", "telemetry.log_request (JSON log line)"),
    ("chalicelib/telemetry.py", "flush_request_metrics", "telemetry.flush_request_metrics (EMF blob)"),
    ("chalicelib/api/routing.py", "_user_reference", "user reference (HMAC of the user id)"),
)


def profile_summary(profiler: cProfile.Profile, requests: int) -> dict[str, Any]:
    stats = pstats.Stats(profiler)
    raw = stats.stats  # (file, line, function) -> (primitive calls, calls, tottime, cumtime, callers)
    points = []
    for suffix, function, label in PROFILE_POINTS:
        matches = [(key, value) for key, value in raw.items() if key[0].endswith(suffix) and key[2] == function]
        if not matches:
            continue
        cumulative = sum(value[3] for _, value in matches)
        calls = sum(value[1] for _, value in matches)
        points.append({"label": label, "cum_ms_per_request": cumulative / requests * 1e3,
                       "calls_per_request": calls / requests})
    by_own_time = sorted(raw.items(), key=lambda entry: -entry[1][2])[:20]
    own = [{"function": f"{Path(key[0]).name}:{key[1]}:{key[2]}" if key[0] != "~" else key[2],
            "own_ms_per_request": value[2] / requests * 1e3, "cum_ms_per_request": value[3] / requests * 1e3,
            "calls_per_request": value[1] / requests} for key, value in by_own_time]
    total = sum(value[2] for value in raw.values())
    return {"requests": requests, "profiled_ms_per_request": total / requests * 1e3, "points": points,
            "top_own_time": own}


# --- report ----------------------------------------------------------------------------------------


def report(results: list[dict[str, Any]], info: dict[str, Any], args: argparse.Namespace) -> str:
    lines = [
        "# Cost of rich answers: GET /users/{id}/recommendations?n=10",
        "",
        f"- Date: {info['date']}",
        f"- Machine: {info['cpu_model']}, {info['cpu_count']} logical CPUs ({info['usable_cores']} usable), "
        f"{info['memory_gb']} GB; Python {info['python']}, numpy {info['numpy']}",
        f"- BLAS threads: {', '.join(f'{k}={v}' for k, v in info['blas_thread_variables'].items())} (set before numpy "
        f"was imported); threadpoolctl sees "
        + (", ".join(f"{entry['api']} {entry['version']} with {entry['threads']} thread(s)" for entry in info["blas"])
           or "nothing"),
        f"- DynamoDB: {info['dynamodb']}; S3: moto. In-process `chalice.test.Client`, secret key, no OpenAPI "
        "validation; REALTIME_EVENTS=0, CATALOG_CACHE_SECONDS=3600, LOG_LEVEL=INFO (log line + EMF blob "
        "written to a counting sink).",
        f"- {args.users} users known to the model, cycled; one warm-up pass; then {args.requests} rounds, "
        "each running every row below once for the next user, the order rotating each round.",
        "",
    ]
    for result in results:
        latency = result["latency"]
        one_off = result["one_off"]
        category = result["category"]
        lines += [
            f"## {result['name']}: {result['description']}",
            "",
            f"Model: {result['model']['items']:,} items x {result['model']['factors']} factors, "
            f"{result['model']['users']:,} users, {result['model']['interactions']:,} seen interactions. "
            f"Catalog: {one_off['catalog_items']:,} items. Category filter: `{category['name']}` "
            f"({category['share_of_catalog']:.2%} of the catalog).",
            "",
            "| what | p50 ms | p90 ms | p99 ms | mean ms | p50 / plain | p90 / plain |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for layer in ("http", "answers", "recommender"):
            base = latency[f"{layer} plain"]
            for name, stats in latency.items():
                if not name.startswith(layer + " "):
                    continue
                lines.append(
                    f"| {name} | {stats['p50_ms']:.3f} | {stats['p90_ms']:.3f} | {stats['p99_ms']:.3f} | "
                    f"{stats['mean_ms']:.3f} | {stats['p50_ms'] / base['p50_ms']:.2f} | "
                    f"{stats['p90_ms'] / base['p90_ms']:.2f} |")
        base = latency["http plain"]
        for name in ("kernel", "kernel + category mask"):
            stats = latency[name]
            lines.append(
                f"| {name} (numpy floor; ratio vs http plain) | {stats['p50_ms']:.3f} | {stats['p90_ms']:.3f} | "
                f"{stats['p99_ms']:.3f} | {stats['mean_ms']:.3f} | {stats['p50_ms'] / base['p50_ms']:.3f} | "
                f"{stats['p90_ms'] / base['p90_ms']:.3f} |")
        shares = result["allowed_share"]
        lines += ["", f"Top-k selection alone (`np.partition` of the float64 score vector, as `ranking.best_k` does; "
                  f"allowed: plain {shares['plain']:.1%}, category {shares['category']:.1%} of the model's items):",
                  "", "| selection | p50 ms | p90 ms |", "|---|---:|---:|"]
        lines += [f"| {name} | {stats['p50_ms']:.3f} | {stats['p90_ms']:.3f} |"
                  for name, stats in result["selection"].items()]
        memory = one_off["memory"]
        parts = memory["index_parts_bytes"]
        builds = one_off["catalog_index_build_s"]
        load_rate = one_off["catalog_items"] / one_off["catalog_load_s"]
        lines += [
            "",
            "| one-off | value |",
            "|---|---|",
            f"| publish the model to S3 | {one_off['publish_model_s']:.2f} s |",
            f"| load the catalog into DynamoDB ({one_off['catalog_load_how']}) | {one_off['catalog_load_s']:.1f} s "
            f"({load_rate:,.0f} items/s) |",
            f"| cold model load (first GET /health: S3 download + checks + Recommender) | "
            f"{one_off['cold_model_load_s']:.2f} s |",
            f"| first answer after that (catalog index: full scan + CatalogIndex + model view; answer's catalog "
            f"read) | {one_off['first_answer_with_index_build_s']:.2f} s |",
            f"| scan alone (`Catalog.all_items()`: Scan pages + pynamodb records -> CatalogItem) | "
            f"{one_off['scan_all_items_s']:.2f} s |",
            f"| the same Scan with a bare botocore client ({one_off['scan_raw_pages']} pages; no pynamodb) | "
            f"{one_off['scan_raw_botocore_s']:.2f} s |",
            f"| `CatalogIndex(items)` alone (best / median of 3) | {min(builds):.3f} s / "
            f"{float(np.median(builds)):.3f} s |",
            f"| model view (`ModelView`: catalog rows <-> model rows, masks) | {one_off['model_view_build_s']:.3f} s |",
            f"| index memory kept (tracemalloc, incl. id strings) | {memory['index_retained_bytes_tracemalloc'] / 2**20:.1f}"
            f" MiB |",
            f"| of which: flags+prices arrays / category rows / word rows / vocabulary ({parts['vocabulary_words']:,} "
            f"words) / item ids | {parts['flags_and_prices'] / 2**20:.2f} / {parts['by_category'] / 2**20:.2f} / "
            f"{parts['by_word_rows'] / 2**20:.1f} / {parts['vocabulary'] / 2**20:.1f} / "
            f"{parts['item_ids'] / 2**20:.1f} MiB |",
            f"| model view arrays | {memory['model_view_bytes'] / 2**20:.2f} MiB |",
            f"| scanned items while rebuilding (transient) / rebuild peak | "
            f"{memory['scanned_items_bytes_tracemalloc'] / 2**20:.0f} / "
            f"{memory['rebuild_peak_bytes_tracemalloc'] / 2**20:.0f} MiB |",
            f"| stdout per HTTP request (log line + EMF blob) | {one_off['stdout_bytes_per_http_request']:.0f} bytes |",
            f"| warm-up pass / measurement | {one_off['warm_up_pass_s']:.1f} s / {one_off['measurement_s']:.1f} s |",
            "",
        ]
        profile = result["profile"]
        lines += [
            f"Profile of {profile['requests']} `category+explain` HTTP requests (cProfile, which inflates "
            f"Python-heavy code; {profile['profiled_ms_per_request']:.2f} ms/request under the profiler):",
            "",
            "| function | cumulative ms / request | calls / request |",
            "|---|---:|---:|",
        ]
        lines += [f"| {point['label']} | {point['cum_ms_per_request']:.3f} | {point['calls_per_request']:.1f} |"
                  for point in profile["points"]]
        lines += ["", "| top own time | own ms / request | cumulative ms / request | calls / request |",
                  "|---|---:|---:|---:|"]
        lines += [f"| `{entry['function']}` | {entry['own_ms_per_request']:.3f} | {entry['cum_ms_per_request']:.3f} | "
                  f"{entry['calls_per_request']:.1f} |" for entry in profile["top_own_time"][:12]]
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per variant (default 1000)")
    parser.add_argument("--users", type=int, default=200, help="users cycled over (default 200)")
    parser.add_argument("--profile-requests", type=int, default=300)
    parser.add_argument("--items", type=int, default=100_000, help="synthetic items (default 100 000)")
    parser.add_argument("--synthetic-users", type=int, default=10_000)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--load-workers", type=int, default=4, help="threads loading the synthetic catalog")
    parser.add_argument("--only", choices=("movielens", "synthetic"), help="run one setup")
    parser.add_argument("--output", type=Path, default=OUTPUT, help=f"where the raw figures go (default {OUTPUT})")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 requests, 5 000 synthetic items")
    args = parser.parse_args(argv)
    if args.quick:
        args.requests, args.items, args.synthetic_users, args.profile_requests = 100, 5_000, 1_000, 50
    out = sys.stdout
    run_started = time.perf_counter()

    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_PROFILE", None)

    info = machine()
    print(f"{info['cpu_model']}, {info['usable_cores']} cores, {info['date']}; BLAS threads = 1", file=out)
    moto = MotoServer().start()
    dynalite: DynaliteServer | None = None
    results = []
    try:
        reason = dynalite_unavailable_reason()
        if reason is None:
            dynalite = DynaliteServer().start()
            dynamodb_url, info["dynamodb"] = dynalite.url, "dynalite (in memory)"
        else:
            dynamodb_url, info["dynamodb"] = moto.url, f"moto (dynalite unavailable: {reason})"
        print(f"S3 on moto {moto.url}, DynamoDB on {info['dynamodb']} {dynamodb_url}", file=out, flush=True)
        setups_made: dict[str, float] = {}
        if args.only in (None, "movielens"):
            setup, seconds = movielens_setup()
            setups_made["movielens_training_s"] = seconds
            print(f"[movielens] trained in {seconds:.1f} s", file=out, flush=True)
            results.append(run_setup(setup, moto.url, dynamodb_url, args, out))
            del setup
        if args.only in (None, "synthetic"):
            setup, seconds = synthetic_setup(args.items, args.synthetic_users, args.factors, 20)
            setups_made["synthetic_generation_s"] = seconds
            print(f"[synthetic] model and catalog generated in {seconds:.1f} s", file=out, flush=True)
            results.append(run_setup(setup, moto.url, dynamodb_url, args, out))
            del setup
    finally:
        reset_app_resources()
        if dynalite is not None:
            dynalite.stop()
        moto.stop()
    info["total_run_s"] = time.perf_counter() - run_started
    info["setup_s"] = setups_made
    text = report(results, info, args)
    print("\n" + text, file=out)
    print(f"total run {info['total_run_s']:.0f} s; raw figures in {args.output}", file=out)
    arguments = {name: str(value) if isinstance(value, Path) else value for name, value in vars(args).items()}
    args.output.write_text(json.dumps({"machine": info, "arguments": arguments, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
