"""Answers from one loaded model, in numpy only.

The :class:`Recommender` binds the maths of :mod:`chalicelib.serving.ranking`
to one :class:`ModelArtifact` and translates between external ids and row
indices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, Iterable

import numpy as np

from chalicelib.errors import ItemNotFound
from chalicelib.models.artifact import ModelArtifact, factor_gram
from chalicelib.serving.approximate import InvertedFileIndex
from chalicelib.serving.ids import IdIndex
from chalicelib.serving.ranking import fold_in, score_contributions
from chalicelib.serving.search import ItemSearch


@dataclass(frozen=True)
class Profile:
    """Whom an answer is for, in the model's terms.

    ``vector`` scores items (None: no usable signal, rank by popularity);
    ``history_rows`` / ``history_values`` are the interactions it comes from
    (for explanations); ``exclude`` are rows never recommended to them.
    """

    strategy: str
    vector: np.ndarray | None
    history_rows: np.ndarray
    history_values: np.ndarray
    exclude: np.ndarray
    details: dict[str, Any] = field(default_factory=dict)


_NO_ROWS = np.empty(0, dtype=np.int64)


@dataclass(frozen=True)
class Recommendations:
    """An answer: ranked item ids with scores, and how they were obtained."""

    model_version: str | None
    strategy: str
    item_ids: list[str]
    scores: list[float]
    details: dict[str, Any] = field(default_factory=dict)
    #: Whom the answer is for, for explanations; never shown as such.
    profile: Profile | None = field(default=None, compare=False, repr=False)

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


@dataclass(frozen=True)
class Ranking:
    """Candidates in order of predicted preference, and those the model does not know."""

    model_version: str | None
    strategy: str
    item_ids: list[str]
    scores: list[float]
    unknown_item_ids: list[str]


class Recommender:
    """Answers recommendation questions from one loaded model.

    What serving derives from the artifact (YᵀY, the search and its inverse
    item norms) is computed once here, at load time, so each request costs
    one matrix-vector product; ids are found by binary search over the orders
    the artifact stores, so loading builds nothing per id.

    Parameters
    ----------
    artifact: the model.
    approximate_min_items: search the artifact's approximate index (when it
        has one) from this many items on; None: always exact.
    """

    def __init__(self, artifact: ModelArtifact, approximate_min_items: int | None = None) -> None:
        self.artifact = artifact
        self.version = artifact.version
        self._item_ids = artifact.item_ids
        self._items = IdIndex(artifact.item_ids, artifact.item_id_order)
        self._users = IdIndex(artifact.user_ids, artifact.user_id_order)
        # Stored with the model (a tenth of a second of a 1M-item cold start); older files lack it.
        self._gram = artifact.item_gram if artifact.item_gram is not None else factor_gram(artifact.item_factors)
        self.training_cutoff = artifact.cutoff_time
        # What training used: the artifact refuses to exist without them.
        self._regularization = artifact.regularization
        self._alpha = artifact.alpha
        self._conventions = artifact.fold_in_conventions
        self._search = ItemSearch.for_artifact(artifact, approximate_min_items)

    @property
    def approximate(self) -> InvertedFileIndex | None:
        """The approximate index user and session answers search (None: exact search)."""
        return self._search.approximate

    @functools.cached_property
    def _popular_order(self) -> np.ndarray:
        # On first use: most answers never fall back to popularity, and sorting a million items is not free.
        return np.argsort(-self.artifact.item_popularity, kind="stable")

    @property
    def n_items(self) -> int:
        """How many items the model knows."""
        return int(self._item_ids.shape[0])

    def item_row(self, item_id: str) -> int:
        """The model's row of *item_id*, or -1 when the model does not know it."""
        return self._items.row(item_id)

    def item_rows(self, item_ids: list[str] | np.ndarray) -> np.ndarray:
        """The model's row of each of *item_ids*, -1 where it does not know one."""
        return self._items.rows(item_ids)

    def item_ids_of(self, rows: np.ndarray) -> list[str]:
        """The item ids of model *rows*."""
        return self._item_ids[rows].tolist()

    def user_row(self, user_id: str) -> int:
        """The model's row of *user_id*, or -1 when the model does not know it."""
        return self._users.row(user_id)

    def knows_user(self, user_id: str) -> bool:
        """Whether *user_id* has trained factors in this model."""
        return user_id in self._users

    def _answer(self, strategy: str, indices: np.ndarray, scores: np.ndarray, profile: Profile | None = None,
                **details: Any) -> Recommendations:
        return Recommendations(model_version=self.version, strategy=strategy, item_ids=self._item_ids[indices].tolist(),
                               scores=scores.tolist(), details=details, profile=profile)

    def _seen_by(self, user_row: int) -> np.ndarray:
        indptr = self.artifact.seen_indptr
        return self.artifact.seen_indices[indptr[user_row]:indptr[user_row + 1]]

    def _popular_profile(self, exclude: np.ndarray = _NO_ROWS, **details: Any) -> Profile:
        return Profile("popular", None, _NO_ROWS, np.empty(0), exclude, details)

    # --- whom an answer is for -------------------------------------------------------------------

    def profile_for_user(self, user_id: str, item_ids: list[str] = (), values: list[float] = (), *,
                         use_trained: bool = True, fresh_weight: float = 1.0) -> Profile:
        """The profile of *user_id*: their trained factors, plus recent interactions folded in.

        A user known to the model (and *use_trained*) with no recent
        interaction keeps their trained factors (``personalized``); with some,
        gets the ALS solution for their training interactions plus these
        (``realtime``); anyone else gets the fold-in of the recent ones alone.
        Every item interacted with, in training or here, is excluded. Without
        any usable positive interaction: popularity (``popular``).

        Parameters
        ----------
        item_ids, values: recent interactions and their weights (negative for
            negative feedback); items the model does not know are ignored.
        use_trained: False for a user whose data was erased since training.
        fresh_weight: what *values* are multiplied by when they are folded in
            with the training row (a user the model knows); the fold-in of a
            stranger's interactions alone is left as it is. In the fold-in a
            training row of a few hundred interactions outweighs a handful of
            fresh ones, whose confidences ``alpha × value`` this raises.
        """
        user_row = self._users.row(user_id) if use_trained else -1
        rows = self._items.rows(item_ids)
        if len(values) != rows.shape[0]:
            raise ValueError(f"{rows.shape[0]} item ids but {len(values)} values")
        known = rows[rows >= 0]
        known_values = np.asarray(values, dtype=np.float64).reshape(-1)[rows >= 0]
        if user_row >= 0:
            seen = self._seen_by(user_row).astype(np.int64)
            indptr = self.artifact.seen_indptr
            trained_values = self.artifact.seen_values[indptr[user_row]:indptr[user_row + 1]].astype(np.float64)
            if known.size == 0:
                return Profile("personalized", self.artifact.user_factors[user_row], seen, trained_values, seen)
            indices = np.concatenate([seen, known])
            strengths = np.concatenate([trained_values, known_values * fresh_weight])
        else:
            seen = _NO_ROWS
            indices, strengths = known, known_values
        exclude = np.union1d(seen, known).astype(np.int64)
        # Net strength per item: a click cancelled by a dislike is no positive signal.
        items, positions = np.unique(indices, return_inverse=True)
        net = np.bincount(positions, weights=strengths, minlength=items.shape[0])
        if not np.any(net > 0):
            return self._popular_profile(exclude)
        vector = fold_in(self.artifact.item_factors, self._gram, indices, strengths, self._regularization,
                         self._alpha, **self._conventions).astype(np.float32)
        return Profile("realtime", vector, indices, strengths, exclude)

    def profile_for_session(self, item_ids: list[str]) -> Profile:
        """The profile of an anonymous visitor who just saw *item_ids* (one interaction each).

        Unknown ids are reported in the ``ignored_item_ids`` detail; with no
        known item at all the profile is popularity.
        """
        rows = self._items.rows(item_ids)
        known = rows[rows >= 0]
        details = {"ignored_item_ids": [item_id for item_id, row in zip(item_ids, rows.tolist(), strict=True) if row < 0]}
        if known.size == 0:
            return self._popular_profile(**details)
        strengths = np.ones(known.shape[0])
        vector = fold_in(self.artifact.item_factors, self._gram, known, strengths, self._regularization,
                         self._alpha, **self._conventions).astype(np.float32)
        return Profile("session", vector, known, strengths, np.unique(known), details)

    # --- answers ---------------------------------------------------------------------------------

    def recommend(self, profile: Profile, n: int, allowed: np.ndarray | None = None) -> Recommendations:
        """The *n* best items for *profile* among those *allowed* (a boolean mask over item rows)."""
        if profile.vector is None:
            answer = self.popular(n, exclude=profile.exclude, allowed=allowed)
            return replace(answer, strategy=profile.strategy, details=profile.details, profile=profile)
        indices, best = self._search.best(profile.vector, n, profile.exclude, allowed)
        return self._answer(profile.strategy, indices, best, profile, **profile.details)

    def similar_items(self, item_id: str, n: int, allowed: np.ndarray | None = None) -> Recommendations:
        """The *n* items whose factors have the highest cosine similarity to *item_id*.

        Raises
        ------
        ItemNotFound
            If the model does not know *item_id*.
        """
        item_row = self._items.row(item_id)
        if item_row < 0:
            raise ItemNotFound(item_id)
        indices, best = self._search.best(self._search.unit_query(item_row), n, np.array([item_row]), allowed,
                                          cosine=True)
        return self._answer("similar", indices, best)

    def popular(self, n: int, exclude: Iterable[int] = (), allowed: np.ndarray | None = None) -> Recommendations:
        """The *n* items with the most training interactions, minus *exclude* and those not *allowed*."""
        order = self._popular_order
        excluded = np.fromiter(exclude, dtype=np.int64)
        if excluded.size or allowed is not None:
            keep = np.ones(self.n_items, dtype=bool) if allowed is None else allowed.copy()
            keep[excluded] = False
            order = order[keep[order]]
        indices = order[:n]
        return self._answer("popular", indices, self.artifact.item_popularity[indices].astype(np.float64),
                            self._popular_profile())

    def rank(self, profile: Profile, candidate_ids: list[str]) -> Ranking:
        """*candidate_ids* the model knows, best first by *profile*'s scores (popularity without a vector).

        Repeated ids count once; unknown ones are listed apart, in the order given.
        """
        candidates = list(dict.fromkeys(candidate_ids))
        rows = self._items.rows(candidates)
        known = rows[rows >= 0]
        if profile.vector is None:
            scores = self.artifact.item_popularity[known].astype(np.float64)
        else:
            scores = (self.artifact.item_factors[known] @ profile.vector).astype(np.float64)
        order = np.lexsort((known, -scores))  # ties: lower row first, as everywhere
        return Ranking(
            model_version=self.version,
            strategy=profile.strategy,
            item_ids=self._item_ids[known[order]].tolist(),
            scores=scores[order].tolist(),
            unknown_item_ids=[item_id for item_id, row in zip(candidates, rows.tolist(), strict=True) if row < 0],
        )

    def score_contributions(self, profile: Profile, item_ids: list[str]) -> tuple[list[str], np.ndarray]:
        """How much each of *profile*'s history items adds to each of *item_ids*' scores.

        Returns the distinct history item ids and a (len(history), len(item_ids))
        matrix, by the exact decomposition of the fold-in score
        (:func:`score_contributions`); no rows for a profile without history.
        """
        if profile.history_rows.size == 0 or not item_ids:
            return [], np.empty((0, len(item_ids)))
        targets = self._items.rows(item_ids)
        if np.any(targets < 0):
            raise ItemNotFound(item_ids[int(np.flatnonzero(targets < 0)[0])])
        rows, contributions = score_contributions(
            self.artifact.item_factors, self._gram, profile.history_rows, profile.history_values,
            self._regularization, self._alpha, targets, **self._conventions)
        return self._item_ids[rows].tolist(), contributions
