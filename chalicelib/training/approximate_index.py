"""Building the approximate top-N index a large model is served with (numpy only).

The index is two inverted files (:mod:`chalicelib.serving.approximate`):
k-means clusters of the item factors, for users' and sessions' inner-product
queries, and spherical k-means clusters of the item directions, for the
cosine queries of "more like this" (whose neighbours the factor clusters
scatter: on a model trained on MovieLens, reaching 0.99 recall through them
meant scoring 58 % of the items). The item rows are reordered so that each
factor cluster is one contiguous block, which serving scores as one slice of
the factor matrix. How many clusters a query scores (its ``probes``) is
calibrated here: the fewest whose mean recall@10 against exact search
reaches the target on a sample of the model's own queries, training users
for one index and items for the other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from chalicelib.models.artifact import ModelArtifact, permute_items
from chalicelib.serving.approximate import InvertedFileIndex
from chalicelib.serving.ranking import best_k, inverse_norms

#: Items per k-means training sample, per list: enough to place every centroid, far fewer than a million.
SAMPLE_PER_LIST = 64
#: The direction index is kept only if its queries score at most this share of the items: its candidates
#: are gathered from scattered rows, which cost about three times a contiguous block (benchmarks.approximate),
#: so beyond it exact search is faster.
SIMILAR_SHARE_LIMIT = 0.2
#: Rows scored at once when assigning items or computing exact answers (bounds memory to a few hundred MB).
CHUNK_ROWS = 65_536
QUERY_CHUNK = 16
K = 10


@dataclass(frozen=True)
class ApproximateIndexOptions:
    """How the index is built.

    ``lists`` defaults to the square root of the number of items; ``probes``
    are calibrated to ``target_recall`` on ``calibration_queries`` users and
    as many items.
    """

    lists: int | None = None
    target_recall: float = 0.995
    kmeans_iterations: int = 10
    calibration_queries: int = 500
    seed: int = 0


def build_approximate_index(artifact: ModelArtifact, options: ApproximateIndexOptions = ApproximateIndexOptions()
                            ) -> ModelArtifact:
    """*artifact* with its items grouped by factor cluster and the two indexes that describe them.

    The manifest entry (``approximate_index``) records the lists and probes of
    each index, the recall@10 and share of items scored they give on the
    calibration sample, and the seconds the build took.
    """
    started = time.perf_counter()
    rng = np.random.default_rng(options.seed)
    n_lists = max(1, min(options.lists or int(round(np.sqrt(artifact.n_items))), artifact.n_items))
    centroids, assignment = kmeans(artifact.item_factors, n_lists, options.kmeans_iterations, rng)
    grouped = permute_items(artifact, np.argsort(assignment, kind="stable"))
    factors = grouped.item_factors
    scale = inverse_norms(factors)
    unit = factors * scale[:, None]
    unit_centroids, directions = kmeans(unit, n_lists, options.kmeans_iterations, rng, spherical=True)
    similar_rows = np.argsort(directions, kind="stable").astype(np.int32)
    by_factors = InvertedFileIndex(centroids, _offsets(np.sort(assignment), n_lists), probes=n_lists)
    by_direction = InvertedFileIndex(unit_centroids, _offsets(directions, n_lists), probes=n_lists, rows=similar_rows)
    users, item_rows = _calibration_queries(grouped, options.calibration_queries, rng)
    probes, user_recall, user_share = calibrate(by_factors, factors, users, None, options.target_recall)
    similar_probes, item_recall, item_share = calibrate(by_direction, factors, unit[item_rows], scale,
                                                        options.target_recall, query_rows=item_rows)
    keep_similar = item_share <= SIMILAR_SHARE_LIMIT
    entry: dict[str, Any] = {
        "lists": n_lists, "probes": probes, "similar_probes": similar_probes if keep_similar else None,
        "target_recall_at_10": options.target_recall,
        "user_recall_at_10": round(user_recall, 4), "user_scored_share": round(user_share, 4),
        "similar_recall_at_10": round(item_recall, 4), "similar_scored_share": round(item_share, 4),
        "similar_index": "kept" if keep_similar else f"dropped: it would score more than {SIMILAR_SHARE_LIMIT:.0%} "
                                                        "of the items, slower than exact search",
        "calibration_queries": int(users.shape[0]), "build_seconds": round(time.perf_counter() - started, 2),
    }
    similar = {"ivf_similar_centroids": unit_centroids, "ivf_similar_offsets": by_direction.offsets,
               "ivf_similar_rows": similar_rows} if keep_similar else {}
    return replace(grouped, ivf_centroids=centroids, ivf_offsets=by_factors.offsets, approximate_index=entry,
                   **similar)


def _offsets(labels: np.ndarray, n_lists: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=n_lists))]).astype(np.int64)


def kmeans(points: np.ndarray, n_lists: int, iterations: int, rng: np.random.Generator, spherical: bool = False
           ) -> tuple[np.ndarray, np.ndarray]:
    """Lloyd's k-means on a sample of *points*, then every point assigned to its nearest centroid.

    *spherical*: the points have unit length, centroids are kept at unit
    length and nearness is the dot product. Returns (centroids float32
    (n_lists, k), assignment int64 (n_points,)). A cluster left empty is
    re-seeded with a random sample point.
    """
    sample_size = min(points.shape[0], n_lists * SAMPLE_PER_LIST)
    sample = points[np.sort(rng.choice(points.shape[0], sample_size, replace=False))]
    centroids = sample[rng.choice(sample_size, n_lists, replace=False)].astype(np.float32)
    for _ in range(iterations):
        labels = assign(sample, centroids, spherical)
        counts = np.bincount(labels, minlength=n_lists)
        sums = np.zeros(centroids.shape, dtype=np.float64)
        np.add.at(sums, labels, sample)
        filled = counts > 0
        centroids[filled] = (sums[filled] / counts[filled, None]).astype(np.float32)
        centroids[~filled] = sample[rng.choice(sample_size, int((~filled).sum()))]
        if spherical:
            centroids *= inverse_norms(centroids)[:, None]
    return centroids, assign(points, centroids, spherical)


def assign(points: np.ndarray, centroids: np.ndarray, spherical: bool = False) -> np.ndarray:
    """The nearest centroid of each point (Euclidean; the largest dot product if *spherical*), in chunks."""
    squared = np.zeros(centroids.shape[0], np.float32) if spherical else np.einsum("ij,ij->i", centroids, centroids)
    labels = np.empty(points.shape[0], dtype=np.int64)
    for start in range(0, points.shape[0], CHUNK_ROWS):
        chunk = points[start:start + CHUNK_ROWS]
        labels[start:start + CHUNK_ROWS] = np.argmin(squared[None, :] - 2.0 * (chunk @ centroids.T), axis=1)
    return labels


def _calibration_queries(artifact: ModelArtifact, count: int, rng: np.random.Generator
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Training users' factors, and the rows of random items (whose unit factors are "more like this" queries)."""
    users = artifact.user_factors[rng.choice(artifact.n_users, min(count, artifact.n_users), replace=False)]
    return users, rng.choice(artifact.n_items, min(count, artifact.n_items), replace=False)


def calibrate(index: InvertedFileIndex, factors: np.ndarray, queries: np.ndarray, scale: np.ndarray | None,
              target: float, query_rows: np.ndarray | None = None) -> tuple[int, float, float]:
    """The fewest probes whose mean recall@10 against exact search reaches *target* on *queries*.

    An exact top-10 item is found exactly when its list is probed (the
    approximate answer is the best of a subset that then holds it), so the
    recall at every probe count follows from the rank of each answer's lists
    among the query's lists: one exact search per query, no approximate one.
    *scale* set: cosine queries. *query_rows*: the item each query is (left
    out of its own answer, as "more like this" leaves it out). Returns
    (probes, recall, mean share of items scored); without queries, every list
    and a recall of 0 (nothing was calibrated).
    """
    if queries.shape[0] == 0:
        return index.n_lists, 0.0, 1.0
    n_lists = index.n_lists
    sizes = np.diff(index.offsets)
    list_of_position = np.repeat(np.arange(n_lists), sizes)
    list_of_row = np.empty(factors.shape[0], dtype=np.int64)
    list_of_row[np.arange(factors.shape[0]) if index.rows is None else index.rows] = list_of_position
    found = np.zeros(n_lists + 1)  # found[p]: exact top-10 items reached when the p best lists are probed
    scored = np.zeros(n_lists + 1)
    answers = 0
    for start in range(0, queries.shape[0], QUERY_CHUNK):
        chunk = queries[start:start + QUERY_CHUNK]
        scores = chunk @ factors.T
        if scale is not None:
            scores *= scale[None, :]
        if query_rows is not None:
            scores[np.arange(chunk.shape[0]), query_rows[start:start + QUERY_CHUNK]] = -np.inf
        for query, best in zip(chunk, best_k(scores, K), strict=True):
            order = index.list_order(query)
            rank_of_list = np.empty(n_lists, dtype=np.int64)
            rank_of_list[order] = np.arange(n_lists)
            best = best[best >= 0]
            found += np.bincount(rank_of_list[list_of_row[best]] + 1, minlength=n_lists + 1) / max(best.shape[0], 1)
            scored += np.concatenate([[0], sizes[order]]) / factors.shape[0]
            answers += 1
    recall = np.cumsum(found) / answers
    share = np.cumsum(scored) / answers
    probes = int(min(np.searchsorted(recall, target - 1e-9) , n_lists))
    probes = max(probes, 1)
    return probes, float(recall[probes]), float(share[probes])
