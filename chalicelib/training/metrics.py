"""Offline ranking metrics at k, as the evaluation protocol defines them (pure numpy).

``recommended`` is an (n_users, k) array of item indices, best first, padded
with -1; ``test`` is a CSR matrix whose rows are the same users' held-out items.
Averages run over users with at least one held-out item.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from chalicelib.serving.ranking import best_k

METRIC_NAMES = ("precision", "recall", "ndcg", "map")


def hit_matrix(recommended: np.ndarray, test: sp.csr_matrix) -> np.ndarray:
    """Boolean (n_users, k): whether each recommended item is among that user's held-out items."""
    n_users, k = recommended.shape
    rows = np.repeat(np.arange(n_users), k)
    cols = recommended.reshape(-1)
    valid = cols >= 0
    hits = np.zeros(n_users * k, dtype=bool)
    if valid.any():
        hits[valid] = np.asarray(test[rows[valid], cols[valid]]).reshape(-1) > 0
    return hits.reshape(n_users, k)


def ranking_metrics(recommended: np.ndarray, test: sp.csr_matrix, k: int) -> dict[str, float]:
    """precision@k, recall@k, nDCG@k (binary gains) and MAP@k, averaged over users with test items.

    * precision = hits / k; recall = hits / |test|
    * nDCG: DCG of the hits over the ideal DCG of min(k, |test|) hits
    * MAP (Microsoft Recommenders): sum over hit positions of hits-so-far / position, over |test|
    """
    recommended = recommended[:, :k]
    if recommended.shape[1] < k:
        # A catalogue smaller than k: the missing places are empty, like -1 padding.
        padding = np.full((recommended.shape[0], k - recommended.shape[1]), -1, dtype=recommended.dtype)
        recommended = np.hstack([recommended, padding])
    n_test = np.diff(test.indptr)
    evaluated = n_test > 0
    hits = hit_matrix(recommended[evaluated], test[evaluated])
    n_test = n_test[evaluated].astype(np.float64)
    if hits.shape[0] == 0:
        return {f"{name}@{k}": 0.0 for name in METRIC_NAMES}
    positions = np.arange(1, k + 1, dtype=np.float64)
    discounts = 1.0 / np.log2(positions + 1)
    dcg = (hits * discounts).sum(axis=1)
    ideal = np.cumsum(discounts)[np.minimum(n_test, k).astype(int) - 1]
    precision_at_hits = np.cumsum(hits, axis=1) / positions
    average_precision = (precision_at_hits * hits).sum(axis=1) / n_test
    return {
        f"precision@{k}": float(hits.sum(axis=1).mean() / k),
        f"recall@{k}": float((hits.sum(axis=1) / n_test).mean()),
        f"ndcg@{k}": float((dcg / ideal).mean()),
        f"map@{k}": float(average_precision.mean()),
    }


def catalog_coverage(recommended: np.ndarray, n_items: int) -> float:
    """Share of the catalog that appears in at least one list."""
    shown = np.unique(recommended[recommended >= 0])
    return float(shown.shape[0] / n_items) if n_items else 0.0


def top_k(user_vectors: np.ndarray, item_factors: np.ndarray, exclude: sp.csr_matrix, k: int,
          batch: int = 2048) -> np.ndarray:
    """The k best items per user by dot product, excluding each user's *exclude* row; -1 pads."""
    n_users = user_vectors.shape[0]
    k = min(k, item_factors.shape[0])
    result = np.full((n_users, k), -1, dtype=np.int64)
    for start in range(0, n_users, batch):
        stop = min(start + batch, n_users)
        scores = user_vectors[start:stop] @ item_factors.T
        result[start:stop] = _best(scores, exclude[start:stop], k)
    return result


def popularity_top_k(popularity: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    """The k most popular items per user, excluding each user's *exclude* row; -1 pads.

    Ties go to the lower index, as :func:`best_k` breaks them. Every user
    shares one popularity order, so nothing is scored per user: a user's
    j-th item is the j-th free place of that order once their own items are
    taken out. With e_i = (rank of their i-th excluded item, ascending) - i,
    that place is ``j + #{i : e_i <= j}``, one binary search per place for all
    users at once.
    """
    n_users, n_items = exclude.shape[0], popularity.shape[0]
    k = min(k, n_items)
    order = np.argsort(-popularity, kind="stable")
    rank = np.empty(n_items, dtype=np.int64)
    rank[order] = np.arange(n_items)
    exclude = exclude.tocsr()
    counts = np.diff(exclude.indptr)
    users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
    # Distinct excluded items of each user, in popularity order.
    keys = np.unique(users * n_items + rank[exclude.indices])
    users, ranks = np.divmod(keys, n_items)
    first = np.searchsorted(users, np.arange(n_users))
    shifted = ranks - (np.arange(ranks.shape[0]) - first[users])
    # Sorted by user, then by shifted rank (non-decreasing within a user): one global search.
    span = n_items + k + 1
    places = np.arange(k, dtype=np.int64)
    targets = (np.arange(n_users, dtype=np.int64)[:, None] * span + places[None, :]).reshape(-1)
    taken = np.searchsorted(users * span + shifted, targets, side="right").reshape(n_users, k) - first[:, None]
    positions = places[None, :] + taken
    return np.where(positions < n_items, order[np.minimum(positions, n_items - 1)], -1)


def limit_users(test: sp.csr_matrix, max_users: int | None, seed: int) -> sp.csr_matrix:
    """*test* with held-out items kept for at most *max_users* users (a seeded sample).

    Evaluation cost grows with the users ranked; a few tens of thousands give
    stable averages, so larger logs are sampled.
    """
    users = np.flatnonzero(np.diff(test.indptr) > 0)
    if max_users is None or users.shape[0] <= max_users:
        return test
    chosen = np.zeros(test.shape[0], dtype=bool)
    chosen[np.random.default_rng(seed).choice(users, max_users, replace=False)] = True
    keep = sp.diags(chosen.astype(np.float32))
    limited = (keep @ test).tocsr()
    limited.eliminate_zeros()
    return limited


def evaluate_ranking(user_factors: np.ndarray, item_factors: np.ndarray, train: sp.csr_matrix,
                     test: sp.csr_matrix, k: int) -> tuple[np.ndarray, dict[str, float]]:
    """Rank for the users with held-out items only (the others do not count) and score.

    Returns the (n_evaluated, k) recommendations and the metrics.
    """
    evaluated = np.flatnonzero(np.diff(test.indptr) > 0)
    recommended = top_k(user_factors[evaluated], item_factors, train[evaluated], k)
    return recommended, ranking_metrics(recommended, test[evaluated], k)


def _best(scores: np.ndarray, exclude: sp.csr_matrix, k: int) -> np.ndarray:
    # float32 halves the memory of a batch of scores; ties at the cut go to the lower index, as in serving.
    rows = np.repeat(np.arange(exclude.shape[0]), np.diff(exclude.indptr))
    return best_k(np.asarray(scores, dtype=np.float32), k, (rows, exclude.indices))
