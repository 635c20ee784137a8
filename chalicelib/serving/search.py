"""The n best items of one model for a query vector: exact, or through its approximate indexes (numpy only)."""

from __future__ import annotations

import functools

import numpy as np

from chalicelib.models.artifact import ModelArtifact
from chalicelib.serving.approximate import InvertedFileIndex
from chalicelib.serving.ranking import inverse_norms, top_n


class ItemSearch:
    """Finds the best item rows of one factor matrix for a query vector.

    Inner-product queries (users, sessions) and cosine ones (similar items)
    each go through their approximate index when there is one, and exactly
    otherwise.

    Parameters
    ----------
    item_factors: (n_items, k) float32.
    approximate: the index of inner-product queries, or None.
    approximate_similar: the index of cosine queries, or None.
    """

    def __init__(self, item_factors: np.ndarray, approximate: InvertedFileIndex | None = None,
                 approximate_similar: InvertedFileIndex | None = None) -> None:
        self._factors = item_factors
        self.approximate = approximate
        self._approximate_similar = approximate_similar

    @functools.cached_property
    def _inverse_norms(self) -> np.ndarray:
        # Cosine similarity scales raw scores by these: a normalised copy of a 1M-item model's factors
        # cost a quarter of a gigabyte. Computed on first use: answers for users never need them.
        return inverse_norms(self._factors)

    @classmethod
    def for_artifact(cls, artifact: ModelArtifact, approximate_min_items: int | None) -> ItemSearch:
        """The search of *artifact*: through its approximate indexes when it has them and at least
        *approximate_min_items* items (None: always exact)."""
        if (artifact.ivf_centroids is None or approximate_min_items is None
                or artifact.n_items < approximate_min_items):
            return cls(artifact.item_factors)
        entry = artifact.approximate_index
        similar = None
        if artifact.ivf_similar_centroids is not None:
            similar = InvertedFileIndex(artifact.ivf_similar_centroids, artifact.ivf_similar_offsets,
                                        int(entry["similar_probes"]), rows=artifact.ivf_similar_rows)
        return cls(artifact.item_factors,
                   InvertedFileIndex(artifact.ivf_centroids, artifact.ivf_offsets, int(entry["probes"])), similar)

    def unit_query(self, row: int) -> np.ndarray:
        """Item *row*'s factors at unit length: the query of the items most similar to it."""
        return self._factors[row] * self._inverse_norms[row]

    def best(self, vector: np.ndarray, n: int, exclude: np.ndarray, allowed: np.ndarray | None,
             cosine: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """The *n* best rows by ``item_factors @ vector``, without *exclude*, among *allowed*; their scores.

        *cosine*: *vector* has unit length and scores are cosine similarities
        (each row's product divided by the row's length).

        With an approximate index, only the rows of its best lists are scored;
        when fewer than *n* of them pass the rules, the search is exact.
        """
        row_scale = self._inverse_norms if cosine else None
        index = self._approximate_similar if cosine else self.approximate
        if index is not None:
            rows = index.candidate_rows(vector)
            keep = np.ones(rows.shape[0], dtype=bool) if allowed is None else allowed[rows]
            if len(exclude):
                keep &= ~np.isin(rows, exclude)
            rows = rows[keep]
            if rows.shape[0] >= n:
                return self._best_of(rows, vector, n, row_scale)
        if allowed is not None and np.count_nonzero(allowed) * 2 < allowed.shape[0]:
            # A selective filter: score the allowed rows only. Partitioning a vector of mostly -inf
            # costs numpy ten times a plain one, and the product shrinks with the rows.
            keep = allowed.copy()
            keep[exclude] = False
            return self._best_of(np.flatnonzero(keep), vector, n, row_scale)
        scores = self._factors @ vector
        if row_scale is not None:
            scores *= row_scale
        return top_n(scores, n, exclude=exclude, allowed=allowed, copy=False)

    def _best_of(self, rows: np.ndarray, vector: np.ndarray, n: int,
                 row_scale: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The *n* best of *rows*; ties go to the one listed first (the lower row when *rows* ascend)."""
        scores = self._factors[rows] @ vector
        if row_scale is not None:
            scores *= row_scale[rows]
        local, best = top_n(scores, n, copy=False)
        return rows[local], best
