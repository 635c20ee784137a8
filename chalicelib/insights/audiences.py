"""Target audiences: the users most likely to engage with an item or a category, by predicted score.

A user's score for item i is the model's prediction ``u · y_i`` (trained
user factors, float32). For a category C it is the mean of the user's scores
over C's items, ``mean_j u · y_j = u · ȳ_C`` with ``ȳ_C`` the mean of their
factors: one matrix-vector product over the users, whatever the category's
size, where the best score over C would cost a product per item. A mean
favours users who like the category as a whole over fans of one of its
items. C's items are those the catalog files under it that the model knows,
blocked ones aside.

Users who already interacted with the item (for a category, with any of its
items) in training are left out unless asked for: they are customers, not an
audience. Users erased since the model was trained never appear: the best
candidates' erasure markers are read by key (:func:`top_unerased`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np

from chalicelib.deadlines import Deadline
from chalicelib.errors import CategoryNotFound, ItemNotFound
from chalicelib.eventlog.log import EventLog
from chalicelib.exports import ErasureReader, unerased
from chalicelib.models.artifact import ModelArtifact
from chalicelib.serving.filters import ItemFilter, ItemFilters
from chalicelib.serving.live_model import LiveModel
from chalicelib.serving.ranking import top_n
from chalicelib.serving.recommender import Recommender

#: Candidates read beyond n, at the least, in case some were erased (markers are read a hundred a call).
MIN_EXTRA_CANDIDATES = 10


@dataclass(frozen=True)
class AudienceTarget:
    """What an audience is for, in the model's terms.

    ``vector`` scores users (``user_factors @ vector``); a user who
    interacted in training with any of ``item_rows`` is engaged.
    """

    vector: np.ndarray
    item_rows: np.ndarray


def item_target(recommender: Recommender, item_id: str) -> AudienceTarget:
    """The target of one item's audience: its factors.

    Raises
    ------
    ItemNotFound
        When the model does not know *item_id*.
    """
    row = recommender.item_row(item_id)
    if row < 0:
        raise ItemNotFound(item_id)
    return AudienceTarget(recommender.artifact.item_factors[row], np.array([row], dtype=np.int64))


def category_target(recommender: Recommender, filters: ItemFilters, category: str) -> AudienceTarget:
    """The target of a category's audience: the mean factors of its items the model knows (blocked ones aside).

    Raises
    ------
    CategoryNotFound
        When no such item is in *category* (compared as filters compare it: case and accents ignored).
    CatalogUnavailable
        When the catalog cannot be read.
    """
    allowed = filters.allowed(recommender, ItemFilter(categories=(category,), available_only=False))
    rows = np.flatnonzero(allowed) if allowed is not None else np.empty(0, dtype=np.int64)
    if rows.size == 0:
        raise CategoryNotFound(category)
    vector = recommender.artifact.item_factors[rows].mean(axis=0, dtype=np.float64).astype(np.float32)
    return AudienceTarget(vector, rows)


def engaged_users(seen_indptr: np.ndarray, seen_indices: np.ndarray, item_rows: np.ndarray,
                  n_items: int) -> np.ndarray:
    """A boolean mask over users (the CSR rows of the seen matrix) of those who interacted with any of *item_rows*.

    One pass over the interactions, O(interactions): the seen matrix is
    stored by user, so an item's users are found by scanning it.
    """
    if item_rows.shape[0] == 1:  # one item: a comparison, three times faster than a lookup at 20M interactions
        hits = seen_indices == item_rows[0]
    else:
        wanted = np.zeros(n_items, dtype=bool)
        wanted[item_rows] = True
        hits = wanted[seen_indices]
    positions = np.flatnonzero(hits)
    engaged = np.zeros(seen_indptr.shape[0] - 1, dtype=bool)
    engaged[np.searchsorted(seen_indptr, positions, side="right") - 1] = True
    return engaged


def audience_scores(artifact: ModelArtifact, target: AudienceTarget, include_engaged: bool) -> tuple[np.ndarray, int]:
    """Every user's score for *target* (float32), -inf for the engaged ones unless *include_engaged*;
    and how many users are engaged."""
    scores = artifact.user_factors @ target.vector
    engaged = engaged_users(artifact.seen_indptr, artifact.seen_indices, target.item_rows, artifact.n_items)
    if not include_engaged:
        scores[engaged] = -np.inf
    return scores, int(np.count_nonzero(engaged))


def top_unerased(scores: np.ndarray, n: int, user_ids: np.ndarray, erasures: ErasureReader | None,
                 cutoff: datetime | None, first_read: int | None = None) -> tuple[np.ndarray, int]:
    """The rows of the *n* best *scores* (never -inf ones) of users not erased since *cutoff*, best first
    (ties to the lower row); and how many erased users were passed over.

    The best ``n + max(n // 10, MIN_EXTRA_CANDIDATES)`` candidates (or
    *first_read*) have their erasure markers read; while erased ones leave
    fewer than *n*, twice as many are taken and the new ones read.
    """
    want = first_read or n + max(n // 10, MIN_EXTRA_CANDIDATES)
    kept: list[np.ndarray] = []
    read = erased = 0
    while True:
        rows, _ = top_n(scores, want, copy=False)
        fresh = rows[read:]
        keep = unerased(user_ids[fresh].tolist(), erasures, cutoff)
        kept.append(fresh[keep])
        erased += int(np.count_nonzero(~keep))
        read = rows.shape[0]
        if sum(part.shape[0] for part in kept) >= n or read < want:  # enough, or no candidate left
            return np.concatenate(kept)[:n], erased
        want *= 2


class Audiences:
    """The answers of the audience routes, from the live model.

    Parameters
    ----------
    live_model: the model being served.
    filters: the catalog's categories as masks over the model's items.
    event_log: where users' erasure markers are read.
    """

    def __init__(self, live_model: LiveModel, filters: ItemFilters, event_log: EventLog) -> None:
        self._live_model = live_model
        self._filters = filters
        self._event_log = event_log

    def for_item(self, item_id: str, n: int, include_engaged: bool, deadline: Deadline | None = None
                 ) -> dict[str, Any]:
        """``GET /items/{item_id}/audience``."""
        recommender = self._live_model.recommender()
        target = item_target(recommender, item_id)
        return {"item_id": item_id, **self._answer(recommender, target, n, include_engaged, deadline)}

    def for_category(self, category: str, n: int, include_engaged: bool, deadline: Deadline | None = None
                     ) -> dict[str, Any]:
        """``GET /audiences?category=…``."""
        recommender = self._live_model.recommender()
        target = category_target(recommender, self._filters, category)
        return {"category": category, "category_items": int(target.item_rows.shape[0]),
                **self._answer(recommender, target, n, include_engaged, deadline)}

    def _answer(self, recommender: Recommender, target: AudienceTarget, n: int, include_engaged: bool,
                deadline: Deadline | None) -> dict[str, Any]:
        artifact = recommender.artifact
        scores, engaged = audience_scores(artifact, target, include_engaged)
        rows, _ = top_unerased(scores, n, artifact.user_ids,
                               lambda user_ids: self._event_log.erasures(user_ids, deadline),
                               recommender.training_cutoff)
        return {
            "model_version": recommender.version,
            "include_engaged": include_engaged,
            "engaged_users": engaged,
            "users": [{"user_id": user_id, "score": round(score, 6)}
                      for user_id, score in zip(artifact.user_ids[rows].tolist(), scores[rows].tolist(), strict=True)],
        }
