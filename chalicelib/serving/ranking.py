"""Ranking maths of a matrix-factorisation model, in numpy only: pure functions, arrays in, arrays out.

Serving and training's offline metrics rank with the same :func:`best_k`, so
an item's place in a list is the same in both.
"""

from __future__ import annotations

import numpy as np


def best_k(scores: np.ndarray, k: int, excluded: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """The column indices of the *k* best scores of each row, best first.

    Ties are broken by the lower index, also when a tie straddles the cut, so
    results are deterministic. ``excluded`` = (rows, columns) of entries that
    must never appear. Where a row has fewer than *k* entries left, the
    places beyond them are -1.

    Parameters
    ----------
    scores: (n_rows, n_items); ranked in its own dtype (float32 halves the
        memory of a batch), copied before exclusions are applied.
    k: how many per row; at most ``n_items`` columns are returned.
    """
    scores = np.array(scores) if excluded is not None else np.asarray(scores)
    if excluded is not None:
        scores[excluded] = -np.inf
    n_rows, n_items = scores.shape
    k = min(k, n_items)
    if k <= 0:
        return np.empty((n_rows, 0), dtype=np.int64)
    # Candidates: every entry at least as good as the k-th best of its row, so the k best and
    # all the entries tied with the k-th, in flat (row-major) positions: one-dimensional numpy
    # calls cost a fraction of their two-dimensional forms on the one row of a request.
    threshold = np.partition(scores, n_items - k, axis=1)[:, n_items - k]
    flat = np.flatnonzero(scores >= threshold[:, None])
    values = scores.reshape(-1)[flat]
    rows, cols = np.divmod(flat, n_items)
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    cols[values == -np.inf] = -1
    if flat.shape[0] == n_rows * k:  # exactly k per row: no tie straddles the cut
        return cols.reshape(n_rows, k)
    per_row = np.bincount(rows, minlength=n_rows)
    rank = np.arange(rows.shape[0]) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    keep = rank < k
    best = np.full((n_rows, k), -1, dtype=np.int64)
    best[rows[keep], rank[keep]] = cols[keep]
    return best


def top_n(scores: np.ndarray, n: int, exclude: np.ndarray | None = None,
          allowed: np.ndarray | None = None, copy: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the *n* best entries of one score vector, best first.

    Entries listed in *exclude*, or False in the boolean mask *allowed*, never
    appear: they are ruled out before the cut, so *n* come back whenever *n*
    are left; ties go to the lower index (see :func:`best_k`). Exclusions are
    written into a copy of *scores*, or into *scores* itself when *copy* is
    False (a caller's own fresh product: a million-item copy costs a
    millisecond). Scores keep their dtype.
    """
    scores = np.array(scores) if copy else np.asarray(scores)
    if exclude is not None and len(exclude):
        scores[exclude] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    best = best_k(scores[None, :], n)[0]
    best = best[best >= 0]
    return best, scores[best]


def normalize_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length; all-zero rows stay zero."""
    return matrix * inverse_norms(matrix)[:, None]


def inverse_norms(matrix: np.ndarray) -> np.ndarray:
    """1 / the length of each row, in the matrix's dtype; 0 for an all-zero row."""
    norms = np.sqrt(np.einsum("ij,ij->i", matrix, matrix))
    return np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)


def activity_weight(positives: int | np.ndarray, reference: float, exponent: float) -> float | np.ndarray:
    """What a user's interaction strengths are multiplied by, for their count of positive items.

    ``(positives / reference) ** -exponent``, a count of 0 taken as 1: with *exponent* > 0 a
    user with many interactions weighs each less, and one with few weighs each more, so the
    heaviest users do not dominate the item factors. *reference*: training's mean count (a user
    at the mean keeps their strengths). Training scales each user's row this way, and the fold-in
    does the same, so its solution is the one training would give.
    """
    return (np.maximum(positives, 1) / reference) ** -exponent


def _fold_in_system(
    item_factors: np.ndarray, gram: np.ndarray, item_indices: np.ndarray, values: np.ndarray,
    regularization: float, alpha: float, confidence_offset: float = 0.0, scale_regularization: bool = False,
    activity_exponent: float = 0.0, activity_reference: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(the distinct items, their confidences, their factors, A) of the fold-in's linear system."""
    item_indices = np.asarray(item_indices, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    unique, inverse = np.unique(item_indices, return_inverse=True)
    strengths = np.bincount(inverse, weights=values, minlength=unique.shape[0])
    keep = strengths != 0
    unique, strengths = unique[keep], strengths[keep]
    if activity_exponent:
        strengths = strengths * activity_weight(int(np.count_nonzero(strengths > 0)), activity_reference,
                                                activity_exponent)
    confidences = np.sign(strengths) * confidence_offset + alpha * strengths
    factors = item_factors[unique].astype(np.float64)
    k = item_factors.shape[1]
    if scale_regularization:
        regularization *= int(np.count_nonzero(strengths > 0))
    a = gram.astype(np.float64) + regularization * np.eye(k)
    a += factors.T @ ((np.abs(confidences) - 1.0)[:, None] * factors)
    return unique, confidences, factors, a


def fold_in(
    item_factors: np.ndarray,
    gram: np.ndarray,
    item_indices: np.ndarray,
    values: np.ndarray,
    regularization: float,
    alpha: float = 1.0,
    *,
    confidence_offset: float = 0.0,
    scale_regularization: bool = False,
    activity_exponent: float = 0.0,
    activity_reference: float = 1.0,
) -> np.ndarray:
    """Solve for the user vector that ALS would give these interactions.

    With confidences ``c_i = alpha * value_i`` (repeated items summed first),
    this is the closed form of Hu, Koren & Volinsky as implicit computes it::

        A = YᵀY + λI + Σ_i (|c_i| - 1) y_i y_iᵀ
        b = Σ_{c_i > 0} c_i y_i
        x = A⁻¹ b

    A negative value is negative feedback: confidence |c_i| in preference 0.
    Spark MLlib's ALS differs in two ways, which the keyword arguments select:
    ``c_i = ±1 + alpha * value_i`` (``confidence_offset=1``), and λ is
    multiplied by the number of positive interactions (``scale_regularization``).
    With an *activity_exponent*, the strengths are first multiplied by
    :func:`activity_weight` of the number of positive items, as training weighed the user's row.

    Parameters
    ----------
    item_factors: (n_items, k) matrix Y.
    gram: YᵀY, precomputed once per model.
    item_indices, values: the interactions, as rows of Y and their strengths.
    regularization: λ used in training.
    alpha: confidence scaling used in training.
    confidence_offset, scale_regularization: training's confidence and λ conventions (above).
    activity_exponent, activity_reference: training's weighting of users by their activity (above).
    """
    _, confidences, factors, a = _fold_in_system(item_factors, gram, item_indices, values, regularization, alpha,
                                                 confidence_offset, scale_regularization, activity_exponent,
                                                 activity_reference)
    positive = confidences > 0
    b = factors[positive].T @ confidences[positive]
    return np.linalg.solve(a, b)


def score_contributions(
    item_factors: np.ndarray,
    gram: np.ndarray,
    item_indices: np.ndarray,
    values: np.ndarray,
    regularization: float,
    alpha: float,
    target_rows: np.ndarray,
    *,
    confidence_offset: float = 0.0,
    scale_regularization: bool = False,
    activity_exponent: float = 0.0,
    activity_reference: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """How much each interacted item adds to each target item's fold-in score.

    The fold-in score of target t is ``y_tᵀ A⁻¹ b`` with ``b = Σ c_j y_j``, a
    sum over the positive interactions j of ``c_j · y_tᵀ A⁻¹ y_j``: those
    terms are the contributions, and they add up to the score exactly.
    Negative feedback shapes A but adds no term (its contribution is 0).

    Returns
    -------
    (rows, contributions): the distinct interacted rows, and a
    (len(rows), len(target_rows)) matrix of their contributions.
    """
    rows, confidences, factors, a = _fold_in_system(item_factors, gram, item_indices, values, regularization, alpha,
                                                    confidence_offset, scale_regularization, activity_exponent,
                                                    activity_reference)
    targets = item_factors[np.asarray(target_rows, dtype=np.int64)].astype(np.float64)
    solved = np.linalg.solve(a, targets.T)  # A⁻¹ y_t for each target, as columns
    contributions = (np.where(confidences > 0, confidences, 0.0)[:, None] * factors) @ solved
    return rows, contributions
