"""P6 and the serving scaling table: approximate top-N against exact search at 10k, 100k and 1M items.

Run from the project root::

    .venv/bin/python -m benchmarks.approximate            # 10k, 100k and 1M items (about 3 minutes)
    .venv/bin/python -m benchmarks.approximate --quick    # 10k and 100k items, fewer requests

**The models.** Random factors have no structure for an index to find, and
real models do: items of a kind sit together. So each synthetic model is grown
from a real one: ALS (the retrain's default hyperparameters, 64 factors)
trained on the bundled MovieLens-100k gives 1 682 item and 943 user vectors;
item *i* of the synthetic model is a random MovieLens item's vector plus
Gaussian noise with, per dimension, the standard deviation of the real item
vectors (so noise as large as the spread of the whole catalogue), and its 10 000
users are MovieLens users' vectors plus the same kind of noise, each with ~20
seen items drawn by popularity. ``build_approximate_index`` (the retrain's
own step) then clusters the items and calibrates its probes to a recall@10
of 0.995 on 500 of those users and 500 items.

**What is measured**, in this process, BLAS on one thread: the p50 of
``GET /users/{id}/recommendations?n=10`` and ``GET /items/{id}/similar?n=10``
through ``chalice.test.Client`` (as P1 in ``benchmarks.serving``: secret key,
real time off, empty catalog), served twice from the same published model:
``APPROXIMATE_SEARCH_MIN_ITEMS=0`` (approximate) and ``10**12`` (exact). The
requests of all four variants are interleaved, the order rotating each
round; recall@10 compares each approximate answer with the exact answer to
the same request, over 200 users and 200 items drawn independently of the
calibration sample.
``P6_approx_vs_exact_1M`` is the recommendations p50 ratio at 1M items.
"""

from __future__ import annotations

import contextlib
import gc
import json
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np

from benchmarks.answers import CountingSink, settings_for
from benchmarks.common import local_stack, standalone
from benchmarks.serving import HEADERS, Variant, measure, publish, resources_switch, served_app
from chalicelib.models.artifact import ModelArtifact, make_artifact
from chalicelib.resources import reset_app_resources
from chalicelib.training.als import AlsParameters, fit_als
from chalicelib.training.approximate_index import ApproximateIndexOptions, build_approximate_index
from chalicelib.training.interactions import build_interactions
from chalicelib.training.sources.movielens import SAMPLE_RATINGS, read_movielens_100k

N = 10
FACTORS = 64
USERS = 10_000
SEEN_PER_USER = 20
MEASURED = 200
SIZES = {"10k": 10_000, "100k": 100_000, "1M": 1_000_000}
#: Measured rounds per size (every variant once per round), full and quick.
FULL_ROUNDS = {"10k": 600, "100k": 600, "1M": 300}
QUICK_ROUNDS = {"10k": 200, "100k": 200}
NEVER = 10**12
SEED = 20261130


def say(message: str, started: float) -> None:
    """Progress, on stderr (stdout is the JSON answer when run alone)."""
    print(f"[approximate {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


def base_model() -> tuple[np.ndarray, np.ndarray]:
    """Item and user vectors of ALS trained on the bundled MovieLens-100k (the retrain's defaults, 64 factors)."""
    ratings = read_movielens_100k(SAMPLE_RATINGS)
    interactions = build_interactions(ratings.user_ids, ratings.item_ids)
    users, items = fit_als(interactions.matrix, AlsParameters(factors=FACTORS))
    return items, users


def grown_artifact(items: np.ndarray, users: np.ndarray, n_items: int, rng: np.random.Generator) -> ModelArtifact:
    """A model of *n_items* items and USERS users, each a real vector plus noise as large as the real spread."""
    item_noise = items.std(axis=0).astype(np.float32)
    user_noise = users.std(axis=0).astype(np.float32)
    item_factors = items[rng.integers(0, items.shape[0], n_items)]
    item_factors += rng.standard_normal(item_factors.shape, dtype=np.float32) * item_noise
    user_factors = users[rng.integers(0, users.shape[0], USERS)]
    user_factors += rng.standard_normal(user_factors.shape, dtype=np.float32) * user_noise
    popularity = 1.0 / (rng.permutation(n_items) + 1.0) ** 0.9
    draws = rng.choice(n_items, size=(USERS, SEEN_PER_USER), p=popularity / popularity.sum())  # one pass over p
    seen = [np.unique(row) for row in draws]
    return make_artifact(
        item_factors=item_factors, user_factors=user_factors,
        user_ids=[f"u{user:05d}" for user in range(USERS)], item_ids=[f"p{item:07d}" for item in range(n_items)],
        item_popularity=np.bincount(np.concatenate(seen), minlength=n_items).astype(np.float32),
        seen_indptr=np.concatenate([[0], np.cumsum([row.shape[0] for row in seen])]),
        seen_indices=np.concatenate(seen), algorithm="synthetic (grown from MovieLens-100k ALS)",
        hyperparameters={"regularization": 48.0, "alpha": 6.0}, training_cutoff="2026-01-01T00:00:00+00:00")


def item_ids_of(response: Any, strategy: str) -> list[str]:
    """The item ids of a 200 answer of *strategy* with N items; fails otherwise."""
    if response.status_code != 200:
        raise RuntimeError(f"answer {response.status_code}: {response.body[:300]!r}")
    body = json.loads(response.body)
    if body["strategy"] != strategy or len(body["items"]) != N:
        raise RuntimeError(f"expected {N} items by {strategy!r}, got {len(body['items'])} by {body['strategy']!r}")
    return [item["item_id"] for item in body["items"]]


def run_size(label: str, artifact: ModelArtifact, s3_url: str, dynamodb_url: str, rounds: int,
             sink: CountingSink, started: float) -> dict[str, Any]:
    """Build the index, publish, serve approximate and exact side by side; p50s, recalls and the index entry."""
    rng = np.random.default_rng(SEED + artifact.n_items)
    build_started = time.perf_counter()
    indexed = build_approximate_index(artifact, ApproximateIndexOptions())
    build_seconds = time.perf_counter() - build_started
    entry = indexed.approximate_index
    say(f"{label}: index built in {build_seconds:.1f} s: {entry}", started)
    users = [str(user) for user in rng.choice(indexed.user_ids, MEASURED, replace=False)]
    items = [str(item) for item in rng.choice(indexed.item_ids, MEASURED, replace=False)]
    approximate_settings = replace(settings_for(s3_url, dynamodb_url), approximate_search_min_items=0)
    publish(approximate_settings, indexed, sink)
    exact_settings = replace(approximate_settings, approximate_search_min_items=NEVER)
    del artifact, indexed
    gc.collect()
    project = Path(tempfile.mkdtemp(prefix=f"bench-approximate-{label}-"))
    try:
        with served_app(approximate_settings, project / "approximate", sink) as approximate, \
                served_app(exact_settings, project / "exact", sink) as exact, resources_switch() as use:
            def recommendations(app):
                return lambda user: app.recommendations(user)

            def similar(app):
                return lambda item: app.client.http.request(
                    "GET", f"/items/{quote(item, safe='')}/similar?n={N}", headers=HEADERS)

            with contextlib.redirect_stdout(sink):
                use(approximate.resources)
                if approximate.resources.live_model.recommender().approximate is None:
                    raise RuntimeError("the approximate configuration does not use the index")
                found_users = _overlap([item_ids_of(recommendations(approximate)(user), "personalized")
                                        for user in users], exact, use, users, recommendations, "personalized")
                use(approximate.resources)
                found_items = _overlap([item_ids_of(similar(approximate)(item), "similar") for item in items],
                                       exact, use, items, similar, "similar")
            say(f"{label}: recall@10 users {found_users:.4f}, similar {found_items:.4f}; measuring {rounds} rounds",
                started)
            # Users and items take turns as the key of each round: the variants get the same one.
            keys = [f"{user}|{item}" for user, item in zip(users, items, strict=True)]
            variants = {
                "approximate": Variant(lambda key: recommendations(approximate)(key.split("|")[0]),
                                       lambda: use(approximate.resources)),
                "exact": Variant(lambda key: recommendations(exact)(key.split("|")[0]), lambda: use(exact.resources)),
                "similar_approximate": Variant(lambda key: similar(approximate)(key.split("|")[1]),
                                               lambda: use(approximate.resources)),
                "similar_exact": Variant(lambda key: similar(exact)(key.split("|")[1]), lambda: use(exact.resources)),
            }
            p50 = measure(variants, keys, rounds, sink)
    finally:
        reset_app_resources()
        shutil.rmtree(project, ignore_errors=True)
    say(f"{label}: " + ", ".join(f"{name} {value:.3f} ms" for name, value in p50.items()), started)
    return {"p50_ms": p50, "recall_at_10": found_users, "similar_recall_at_10": found_items,
            "index": entry, "index_build_s": build_seconds}


def _overlap(approximate_answers: list[list[str]], exact: Any, use: Any, keys: list[str], call: Any,
             strategy: str) -> float:
    """Mean share of each exact answer's items that the approximate answer to the same request holds."""
    use(exact.resources)
    shared = [len(set(found) & set(item_ids_of(call(exact)(key), strategy))) / N
              for found, key in zip(approximate_answers, keys, strict=True)]
    return float(np.mean(shared))


def run(quick: bool) -> dict[str, Any]:
    """P6 and the per-size figures (p50 in ms), the 1M ones None when *quick*."""
    started = time.perf_counter()
    rounds = QUICK_ROUNDS if quick else FULL_ROUNDS
    sink = CountingSink()
    items, users = base_model()
    say(f"MovieLens-100k base model: {items.shape[0]} items, {users.shape[0]} users", started)
    results: dict[str, dict[str, Any]] = {}
    with local_stack() as (s3_url, dynamodb_url, engine):
        say(f"S3 on moto {s3_url}, DynamoDB on {engine} {dynamodb_url}", started)
        for label, size in SIZES.items():
            if label not in rounds:
                continue
            artifact = grown_artifact(items, users, size, np.random.default_rng(SEED + size))
            results[label] = run_size(label, artifact, s3_url, dynamodb_url, rounds[label], sink, started)
            gc.collect()
    say(f"done in {time.perf_counter() - started:.0f} s", started)
    largest = results.get("1M")
    figures: dict[str, Any] = {
        "P6_approx_vs_exact_1M": (largest["p50_ms"]["approximate"] / largest["p50_ms"]["exact"]
                                  if largest else None),
        "recall_at_10_approx": largest["recall_at_10"] if largest else None,
        "P6_similar_approx_vs_exact_1M": (largest["p50_ms"]["similar_approximate"]
                                          / largest["p50_ms"]["similar_exact"] if largest else None),
        "similar_recall_at_10_approx": largest["similar_recall_at_10"] if largest else None,
        "approximate_rounds": rounds,
    }
    for label, result in results.items():
        p50 = result["p50_ms"]
        figures.update({
            f"serving_exact_p50_ms_{label}": p50["exact"],
            f"serving_approx_p50_ms_{label}": p50["approximate"],
            f"similar_exact_p50_ms_{label}": p50["similar_exact"],
            f"similar_approx_p50_ms_{label}": p50["similar_approximate"],
            f"recall_at_10_approx_{label}": result["recall_at_10"],
            f"similar_recall_at_10_approx_{label}": result["similar_recall_at_10"],
            f"approximate_index_{label}": result["index"],
            f"approximate_index_build_s_{label}": result["index_build_s"],
        })
    return figures


def main(argv: list[str] | None = None) -> int:
    return standalone(run, __doc__, "10k and 100k items only, fewer requests", argv)


if __name__ == "__main__":
    raise SystemExit(main())
