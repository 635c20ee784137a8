"""Audiences at a million users: the CSV export's throughput and memory, and the route's ranking (not part of
``make bench``).

Run from the project root::

    .venv/bin/python -m benchmarks.audience            # 1 000 000 users x 100 000 items (about 3 minutes)
    .venv/bin/python -m benchmarks.audience --quick    # 100 000 users x 10 000 items

A synthetic model (``benchmarks.answers.synthetic_artifact``: random 64-factor
float32 factors, ~20 seen items per user, power-law item popularity) is
published to a local S3 (moto); the event table lives on dynalite (moto where
Node.js is missing) and holds the erasure markers of 100 of the users. A child
process (``--child``) then does what ``scripts/export_audience.py --item``
does for the most popular item: loads the live version from S3, scores every
user, leaves out the engaged ones, and writes the rest as CSV parts of 100 000
users, reading each part's erasure markers from the event table. The same
export runs again without the erasure check (``--no-erasure-check``) to show
what the markers cost. The child's peak resident set during the export is
measured apart from the model's load (``/proc/self/clear_refs`` resets
``VmHWM`` in between). Last, the route's own work on the same model: the
scores and the 100 best users with their erasure markers read (median of 5).
One BLAS thread.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy is imported

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.batch import TimedErasures, measure_in_child  # noqa: E402
from benchmarks.common import parent_or_child  # noqa: E402
from benchmarks.retrain import peak_rss_mb  # noqa: E402
from chalicelib.config import load_settings  # noqa: E402
from chalicelib.models.artifact import ModelArtifact  # noqa: E402
from chalicelib.resources import Resources  # noqa: E402

#: Users x items, as in benchmarks.batch.
SIZES = {"full": (1_000_000, 100_000), "quick": (100_000, 10_000)}
ERASED_USERS = 100
ROUTE_N = 100


def _resident_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current resident set (Linux), so the next peak is the export's own."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def child(settings_env: dict[str, str]) -> dict[str, Any]:
    """Load the live model, export the most popular item's audience with and without the erasure check."""
    from chalicelib.exports import ExportFolder
    from chalicelib.insights.audience_export import DEFAULT_CHUNK_USERS, audience_order, export_audience
    from chalicelib.insights.audiences import audience_scores, item_target, top_unerased
    from chalicelib.serving.recommender import Recommender

    settings = load_settings(settings_env)
    resources = Resources(settings)
    started = time.perf_counter()
    version = resources.model_registry.live_version()
    model = Recommender(resources.model_registry.load(version))
    artifact = model.artifact
    loaded = time.perf_counter()
    item_id = str(artifact.item_ids[int(np.argmax(artifact.item_popularity))])
    target = item_target(model, item_id)
    erasures = TimedErasures(resources.event_log)

    resident_before = _resident_mb()
    peak_reset = _reset_peak()
    began = time.perf_counter()
    summary = export_audience(artifact, target, {"item_id": item_id},
                              ExportFolder(resources.s3, settings.model_bucket, f"audiences/{version}"),
                              erasures=erasures)
    export_s = time.perf_counter() - began
    export_peak = peak_rss_mb()

    began = time.perf_counter()
    unchecked = export_audience(artifact, target, {"item_id": item_id},
                                ExportFolder(resources.s3, settings.model_bucket, f"unchecked/{version}"))
    unchecked_s = time.perf_counter() - began

    began = time.perf_counter()
    scores, _ = audience_scores(artifact, target, include_engaged=False)
    audience_order(scores)
    order_s = time.perf_counter() - began

    route_ms = []
    for _ in range(5):
        began = time.perf_counter()
        scores, _ = audience_scores(artifact, target, include_engaged=False)
        top_unerased(scores, ROUTE_N, artifact.user_ids, resources.event_log.erasures, model.training_cutoff)
        route_ms.append((time.perf_counter() - began) * 1000)
    return {
        "users_in_model": artifact.n_users, "items": artifact.n_items, "item_id": item_id,
        "engaged_users": summary.engaged_users, "users": summary.users, "erased_users": summary.erased_users,
        "parts": len(summary.parts), "chunk_users": DEFAULT_CHUNK_USERS, "bytes_written_mb": summary.bytes_written / 2**20,
        "load_s": loaded - started, "export_s": export_s, "users_per_s": summary.users / export_s,
        "erasure_reads_s": erasures.seconds, "erasure_read_calls": -(-(summary.users + summary.erased_users) // 100),
        "export_without_erasure_check_s": unchecked_s, "users_per_s_without_erasure_check": unchecked.users / unchecked_s,
        "scores_and_order_s": order_s,
        "resident_after_load_mb": resident_before, "peak_rss_during_export_mb": export_peak if peak_reset else None,
        "export_memory_over_model_mb": export_peak - resident_before if peak_reset else None,
        "model_mb": (artifact.user_factors.nbytes + artifact.item_factors.nbytes + artifact.seen_indices.nbytes
                     + artifact.seen_indptr.nbytes + artifact.user_ids.nbytes) / 2**20,
        "route_top100_ms_median": statistics.median(route_ms),
    }


def _erase_some(resources: Resources, artifact: ModelArtifact) -> None:
    for user_id in artifact.user_ids[:: artifact.n_users // ERASED_USERS].tolist():
        resources.event_log.erase(user_id)


def run(quick: bool) -> dict[str, Any]:
    """Publish the synthetic model, erase a few of its users, run the child, return its figures."""
    return measure_in_child("benchmarks.audience", *SIZES["quick" if quick else "full"], seed=20261201,
                            prepare=_erase_some)


def main(argv: list[str] | None = None) -> int:
    return parent_or_child(run, child, sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    raise SystemExit(main())
