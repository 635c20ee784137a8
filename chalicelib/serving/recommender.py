"""Answers from one loaded model, in numpy only.

The :class:`Recommender` binds the maths of :mod:`chalicelib.serving.ranking`
to one :class:`ModelArtifact` and translates between external ids and row
indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np

from chalicelib.errors import ItemNotFound
from chalicelib.models.artifact import ModelArtifact
from chalicelib.serving.ranking import fold_in, normalize_rows, similar_item_scores, top_n


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


@dataclass(frozen=True)
class Recommendations:
    """An answer: ranked item ids with scores, and how they were obtained."""

    model_version: str | None
    strategy: str
    item_ids: list[str]
    scores: list[float]
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The JSON body the API returns."""
        return {
            "model_version": self.model_version,
            "strategy": self.strategy,
            **self.details,
            "items": [
                {"item_id": item_id, "score": round(float(score), 6)}
                for item_id, score in zip(self.item_ids, self.scores, strict=True)
            ],
        }


class Recommender:
    """Answers recommendation questions from one loaded model.

    Everything derived from the artifact (id maps, unit-length item rows,
    YᵀY, popularity order) is computed once here, at load time, so each
    request costs one matrix-vector product.
    """

    def __init__(self, artifact: ModelArtifact) -> None:
        self.artifact = artifact
        self.version = artifact.version
        self._item_ids = artifact.item_ids
        self._item_index = {item_id: i for i, item_id in enumerate(artifact.item_ids.tolist())}
        self._user_index = {user_id: u for u, user_id in enumerate(artifact.user_ids.tolist())}
        self._normalized_items = normalize_rows(artifact.item_factors)
        self._gram = artifact.item_factors.T.astype(np.float64) @ artifact.item_factors.astype(np.float64)
        self._popular_order = np.argsort(-artifact.item_popularity, kind="stable")
        self.training_cutoff = _parse_time(artifact.training_cutoff)
        # What training used: the artifact refuses to exist without them.
        self._regularization = artifact.regularization
        self._alpha = artifact.alpha

    def knows_user(self, user_id: str) -> bool:
        """Whether *user_id* has trained factors in this model."""
        return user_id in self._user_index

    def _answer(self, strategy: str, indices: np.ndarray, scores: np.ndarray, **details: Any) -> Recommendations:
        return Recommendations(
            model_version=self.version,
            strategy=strategy,
            item_ids=self._item_ids[indices].tolist(),
            scores=scores.tolist(),
            details=details,
        )

    def _seen_by(self, user_row: int) -> np.ndarray:
        indptr = self.artifact.seen_indptr
        return self.artifact.seen_indices[indptr[user_row]:indptr[user_row + 1]]

    def recommend_for_user(self, user_id: str, n: int) -> Recommendations:
        """Top *n* items for *user_id*, without the items seen in training.

        Users the model does not know get the most popular items.
        """
        user_row = self._user_index.get(user_id)
        if user_row is None:
            return self.popular(n)
        scores = self.artifact.item_factors @ self.artifact.user_factors[user_row]
        indices, best = top_n(scores, n, exclude=self._seen_by(user_row))
        return self._answer("personalized", indices, best)

    def similar_items(self, item_id: str, n: int) -> Recommendations:
        """The *n* items whose factors have the highest cosine similarity to *item_id*.

        Raises
        ------
        ItemNotFound
            If the model does not know *item_id*.
        """
        item_row = self._item_index.get(item_id)
        if item_row is None:
            raise ItemNotFound(item_id)
        scores = similar_item_scores(self._normalized_items, item_row)
        indices, best = top_n(scores, n, exclude=np.array([item_row]))
        return self._answer("similar", indices, best)

    def popular(self, n: int, exclude: Iterable[int] = ()) -> Recommendations:
        """The *n* items with the most training interactions, minus *exclude*."""
        excluded = set(exclude)
        order = self._popular_order
        if excluded:
            order = order[~np.isin(order, list(excluded))]
        indices = order[:n]
        return self._answer("popular", indices, self.artifact.item_popularity[indices].astype(np.float64))

    def recommend_with_history(
        self, user_id: str, item_ids: list[str], values: list[float], n: int, *, use_trained: bool = True
    ) -> Recommendations:
        """Top *n* items for a user whose recent interactions are given.

        A user known to the model (and *use_trained*) gets the ALS solution
        for their training interactions plus these ones; anyone else gets
        the fold-in of these alone. Every item interacted with, in training
        or here, is excluded. Strategy ``realtime`` when interactions were
        folded in; without any usable positive interaction the answer falls
        back to the trained factors (``personalized``) or popularity.

        Parameters
        ----------
        item_ids, values: the interactions to fold in and their weights
            (negative for negative feedback); unknown items are ignored.
        use_trained: False for a user whose data was erased since training.
        """
        user_row = self._user_index.get(user_id) if use_trained else None
        rows = [self._item_index.get(item_id) for item_id in item_ids]
        known = np.array([row for row in rows if row is not None], dtype=np.int64)
        known_values = np.array([v for v, row in zip(values, rows, strict=True) if row is not None], dtype=np.float64)
        if user_row is not None:
            seen = self._seen_by(user_row)
            indptr = self.artifact.seen_indptr
            trained_values = self.artifact.seen_values[indptr[user_row]:indptr[user_row + 1]]
            if known.size == 0:
                return self.recommend_for_user(user_id, n)
            indices = np.concatenate([seen.astype(np.int64), known])
            strengths = np.concatenate([trained_values.astype(np.float64), known_values])
        else:
            seen = np.empty(0, dtype=np.int64)
            indices, strengths = known, known_values
        exclude = np.union1d(seen, known).astype(np.int64)
        # Net strength per item: a click cancelled by a dislike is no positive signal.
        items, positions = np.unique(indices, return_inverse=True)
        net = np.bincount(positions, weights=strengths, minlength=items.shape[0])
        if not np.any(net > 0):
            return self.popular(n, exclude=exclude.tolist())
        user_vector = fold_in(
            self.artifact.item_factors, self._gram, indices, strengths, self._regularization, self._alpha,
        )
        scores = self.artifact.item_factors @ user_vector.astype(np.float32)
        best_indices, best = top_n(scores, n, exclude=exclude)
        return self._answer("realtime", best_indices, best)

    def recommend_for_session(self, item_ids: list[str], n: int) -> Recommendations:
        """Recommendations for an anonymous visitor who just saw *item_ids*.

        Known items are folded in as one interaction each (repeats add up) to
        get a user vector; the seen items are excluded. Unknown ids are
        reported in ``ignored_item_ids``; with no known item at all the
        answer is the popularity ranking.
        """
        rows = [self._item_index.get(item_id) for item_id in item_ids]
        known = np.array([row for row in rows if row is not None], dtype=np.int64)
        ignored = [item_id for item_id, row in zip(item_ids, rows, strict=True) if row is None]
        details = {"ignored_item_ids": ignored}
        if known.size == 0:
            answer = self.popular(n)
            return Recommendations(answer.model_version, answer.strategy, answer.item_ids, answer.scores, details)
        user_vector = fold_in(
            self.artifact.item_factors, self._gram, known, np.ones(known.shape[0]),
            self._regularization, self._alpha,
        )
        scores = self.artifact.item_factors @ user_vector.astype(np.float32)
        indices, best = top_n(scores, n, exclude=np.unique(known))
        return self._answer("session", indices, best, **details)
