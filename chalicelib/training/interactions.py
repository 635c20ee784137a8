"""User × item interaction matrices built with scipy from event arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping

import numpy as np
import scipy.sparse as sp

from chalicelib.eventlog.weighting import EventWeighting

if TYPE_CHECKING:
    from chalicelib.training.event_arrays import EventLogSnapshot


@dataclass(frozen=True)
class InteractionMatrix:
    """A CSR user × item matrix and the external ids of its rows and columns."""

    matrix: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_interactions(self) -> int:
        return int(self.matrix.nnz)


def build_interactions(user_ids: np.ndarray, item_ids: np.ndarray, values: np.ndarray | None = None) -> InteractionMatrix:
    """Sum *values* (1 per event when omitted) into a user × item CSR matrix.

    Row and column order is the sorted order of the distinct ids, so the
    same events always give the same matrix.
    """
    user_ids = np.asarray(user_ids).astype(str)
    item_ids = np.asarray(item_ids).astype(str)
    if values is None:
        values = np.ones(user_ids.shape[0], dtype=np.float32)
    unique_users, user_rows = np.unique(user_ids, return_inverse=True)
    unique_items, item_cols = np.unique(item_ids, return_inverse=True)
    matrix = sp.coo_matrix(
        (np.asarray(values, dtype=np.float32), (user_rows, item_cols)),
        shape=(unique_users.shape[0], unique_items.shape[0]),
    ).tocsr()
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    return InteractionMatrix(matrix=matrix, user_ids=unique_users, item_ids=unique_items)


@dataclass(frozen=True)
class InteractionTable:
    """One row per (user, item) pair: the combined event weight and the time of the latest event.

    ``users``/``items`` index ``user_ids``/``item_ids``; tables split from one
    another share those id arrays, so their matrices line up.
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    last_times: np.ndarray
    user_ids: np.ndarray
    item_ids: np.ndarray

    def __len__(self) -> int:
        return int(self.users.shape[0])

    def subset(self, mask: np.ndarray) -> "InteractionTable":
        """The rows where *mask* is true, same id arrays."""
        return InteractionTable(self.users[mask], self.items[mask], self.values[mask], self.last_times[mask],
                                self.user_ids, self.item_ids)

    def to_matrix(self) -> InteractionMatrix:
        """CSR user × item matrix over all ids of the table (empty rows included)."""
        matrix = sp.csr_matrix(
            (self.values.astype(np.float32), (self.users, self.items)),
            shape=(self.user_ids.shape[0], self.item_ids.shape[0]),
        )
        matrix.sum_duplicates()
        return InteractionMatrix(matrix=matrix, user_ids=self.user_ids, item_ids=self.item_ids)


def interaction_table(
    snapshot: "EventLogSnapshot",
    weights: Mapping[str, float] | EventWeighting,
    half_life_days: float | None = None,
    now: np.datetime64 | None = None,
) -> InteractionTable:
    """Combine the events of *snapshot* into one weighted interaction per (user, item).

    Rules, in order:

    * events of a type without a weight are left out, and so are the events
      an erased user's log received up to their erasure;
    * each event counts its type's weight (negative for negative feedback),
      scaled by its value where *weights* (an :class:`EventWeighting`) says so,
      times ``0.5 ** (age / half_life)`` when a half-life is given (age up to *now*,
      default the latest event);
    * repeated events of one user and item are summed, so two views weigh 2 and
      a like followed by a dislike cancels out; a pair whose sum is exactly 0 is
      dropped, a negative sum is kept as negative feedback;
    * users and items left without any interaction are dropped, so an erased
      user is unknown to the trained model.
    """
    events = snapshot.events
    weighting = weights if isinstance(weights, EventWeighting) else EventWeighting(dict(weights))
    weight = weighting.weights(events.event_types, events.types, events.values)
    keep = ~np.isnan(weight)
    if snapshot.erased:
        erased_at = np.full(events.user_ids.shape[0], np.datetime64("NaT", "ms"))
        for position, user_id in enumerate(events.user_ids.tolist()):
            if user_id in snapshot.erased:
                erased_at[position] = snapshot.erased[user_id]
        cut = erased_at[events.users]
        # An erasure removes what the log received before it; events received after it are new activity,
        # whatever their own timestamp (chalicelib.eventlog.log). Without a receive time, the timestamp judges.
        judged = events.times
        if events.received is not None:
            judged = np.where(np.isnat(events.received), events.times, events.received)
        keep &= np.isnat(cut) | (judged > cut)
    users, items, times, weight = events.users[keep], events.items[keep], events.times[keep], weight[keep]
    if half_life_days:
        reference = now if now is not None else (times.max() if times.size else np.datetime64(0, "ms"))
        age_days = (reference - times).astype(np.float64) / 86_400_000
        weight = weight * np.power(0.5, np.maximum(age_days, 0) / half_life_days)

    n_items = max(int(events.item_ids.shape[0]), 1)
    pair = users.astype(np.int64) * n_items + items
    unique_pairs, inverse = np.unique(pair, return_inverse=True)
    sums = np.bincount(inverse, weights=weight, minlength=unique_pairs.shape[0])
    last_ms = np.full(unique_pairs.shape[0], np.iinfo(np.int64).min, dtype=np.int64)
    np.maximum.at(last_ms, inverse, times.astype(np.int64))
    last = last_ms.astype("datetime64[ms]")
    nonzero = sums != 0
    unique_pairs, sums, last = unique_pairs[nonzero], sums[nonzero], last[nonzero]
    pair_users, pair_items = unique_pairs // n_items, unique_pairs % n_items

    # Rows and columns in the sorted order of the ids, whatever order the log was read in,
    # so the same events always give the same matrix (and the same fit for a seed).
    user_ids, user_codes = _sorted_codes(events.user_ids, pair_users)
    item_ids, item_codes = _sorted_codes(events.item_ids, pair_items)
    return InteractionTable(
        users=user_codes, items=item_codes, values=sums.astype(np.float32), last_times=last,
        user_ids=user_ids, item_ids=item_ids,
    )


def _sorted_codes(ids: np.ndarray, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct ids used by *codes*, sorted, and *codes* renumbered into them."""
    used, inverse = np.unique(codes, return_inverse=True)
    order = np.argsort(ids[used], kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.shape[0])
    return ids[used][order], rank[inverse].astype(np.int32)
