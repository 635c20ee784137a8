"""Batch recommendations: every user's top 10 into S3, its throughput and peak memory (not part of ``make bench``).

Run from the project root::

    .venv/bin/python -m benchmarks.batch            # 1 000 000 users x 100 000 items (about 5 minutes)
    .venv/bin/python -m benchmarks.batch --quick    # 100 000 users x 10 000 items

A synthetic model (``benchmarks.answers.synthetic_artifact``: random 64-factor
float32 factors, ~20 seen items per user) is published to a local S3 (moto);
the event table lives on dynalite (moto where Node.js is missing). A child
process (``--child``) then does what ``scripts/batch_recommend.py`` does: loads
the live version from S3 and writes every user's top 10 as JSON lines, chunk
by chunk, reading each chunk's erasure markers from the event table. Its peak
resident set (``VmHWM``) is its own, moto's memory staying in the parent.

Baseline, in the same child on the same model: the bare kernel the export is
built on (``chalicelib.training.metrics.top_k``: the chunk's product, seen
items excluded, partition and sort) over the first 10 % of the users, scaled
to all of them. One BLAS thread.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy is imported

import sys  # noqa: E402
import time  # noqa: E402
from typing import Any, Callable  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.answers import settings_for, synthetic_artifact  # noqa: E402
from benchmarks.common import local_stack, parent_or_child, run_child  # noqa: E402
from benchmarks.retrain import peak_rss_mb  # noqa: E402
from chalicelib.config import load_settings  # noqa: E402
from chalicelib.eventlog.log import EventLog  # noqa: E402
from chalicelib.models.artifact import ModelArtifact  # noqa: E402
from chalicelib.resources import Resources  # noqa: E402

N = 10
SIZES = {"full": (1_000_000, 100_000), "quick": (100_000, 10_000)}


class TimedErasures:
    """``EventLog.erasures``, with the time spent in it."""

    def __init__(self, event_log: EventLog) -> None:
        self._event_log = event_log
        self.seconds = 0.0

    def __call__(self, user_ids: list[str]) -> dict:
        began = time.perf_counter()
        try:
            return self._event_log.erasures(user_ids)
        finally:
            self.seconds += time.perf_counter() - began


def child(settings_env: dict[str, str]) -> dict[str, Any]:
    """Load the live model, export every user's top N, then time the bare kernel on a tenth of them."""
    import scipy.sparse as sp

    from chalicelib.exports import ExportFolder
    from chalicelib.training.batch import chunk_size, export_recommendations
    from chalicelib.training.metrics import top_k

    settings = load_settings(settings_env)
    resources = Resources(settings)
    started = time.perf_counter()
    version = resources.model_registry.live_version()
    artifact = resources.model_registry.load(version)
    loaded = time.perf_counter()
    erasures = TimedErasures(resources.event_log)

    output = ExportFolder(resources.s3, settings.model_bucket, f"batch/{version}")
    summary = export_recommendations(artifact, output, N, erasures=erasures)
    exported = time.perf_counter()
    peak_mb = peak_rss_mb()

    sample = np.arange(artifact.n_users // 10)
    seen = sp.csr_matrix((np.ones(artifact.seen_indices.shape[0], np.float32), artifact.seen_indices,
                          artifact.seen_indptr), shape=(artifact.n_users, artifact.n_items))
    began = time.perf_counter()
    top_k(artifact.user_factors[sample], artifact.item_factors, seen[sample], N, batch=chunk_size(artifact.n_items))
    kernel_seconds = (time.perf_counter() - began) * artifact.n_users / sample.shape[0]
    return {
        "users": summary.users, "items": artifact.n_items, "n": N, "parts": len(summary.parts),
        "chunk_users": chunk_size(artifact.n_items), "bytes_written_mb": summary.bytes_written / 2**20,
        "load_s": loaded - started, "export_s": exported - loaded, "erasure_reads_s": erasures.seconds,
        "users_per_s": summary.users / (exported - loaded), "kernel_s_scaled": kernel_seconds,
        "export_vs_kernel": (exported - loaded) / kernel_seconds,
        "peak_rss_mb": peak_mb, "model_mb": (artifact.user_factors.nbytes + artifact.item_factors.nbytes
                                             + artifact.seen_indices.nbytes + artifact.seen_indptr.nbytes) / 2**20,
    }


def measure_in_child(module: str, n_users: int, n_items: int, seed: int,
                     prepare: Callable[[Resources, ModelArtifact], None] = lambda resources, artifact: None,
                     ) -> dict[str, Any]:
    """Publish a synthetic model of *n_users* x *n_items* (seeded) to a fresh local stack, once *prepare*
    has set the stack up for it, and return the figures of *module*'s child measured against it."""
    with local_stack() as (s3_url, dynamodb_url, engine):
        settings = settings_for(s3_url, dynamodb_url)
        resources = Resources(settings)
        resources.provision()
        started = time.perf_counter()
        artifact = synthetic_artifact(np.random.default_rng(seed), n_items, n_users, 64, 20)
        prepare(resources, artifact)
        resources.model_registry.publish(artifact)
        del artifact
        setup_s = time.perf_counter() - started
        figures = run_child(module, settings)
    return {**figures, "dynamodb": engine, "setup_s": setup_s, "blas_threads": 1}


def run(quick: bool) -> dict[str, Any]:
    """Publish the synthetic model, run the child, return its figures."""
    return measure_in_child("benchmarks.batch", *SIZES["quick" if quick else "full"], seed=20261130)


def main(argv: list[str] | None = None) -> int:
    return parent_or_child(run, child, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
