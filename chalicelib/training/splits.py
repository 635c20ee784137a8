"""Held-out splits of an interaction table, without leakage between the parts.

Only positive interactions are ever held out (a dislike is no hit to find);
negative ones always stay in training. Every user keeps at least one
positive interaction in training.

A time split is only as good as the timestamps under it. Events imported
without their own times all carry the import's, and then "each user's most
recent interactions" are decided by ties, not by time: the held-out part is
arbitrary, and the evaluation and the search chosen on it say little.
:func:`split` breaks ties at random (seeded) and, when ties rather than times
decide most of what is held out, uses the stratified random split instead and
says so (:class:`SplitOutcome`). Real logs tie too, less: on MovieLens-100k,
whose users rated several films within one second, ties decide 6 % of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.training.interactions import InteractionTable

TIME = "time"
RANDOM = "random"
#: A time split gives way to the stratified one when more than this share of its held-out
#: interactions have the same time as their user's last interaction kept for training.
MAX_TIED_SHARE = 0.5


@dataclass(frozen=True)
class SplitOutcome:
    """The split asked for, the one used, and what the timestamps allowed.

    Of the ``held_out`` interactions a time split chose, ``tied`` have the
    same time as their user's last interaction kept for training: a random
    tie-break, not time, put them on the held-out side. ``reason`` says why
    another split was used, None when none was.
    """

    requested: str
    used: str
    held_out: int = 0
    tied: int = 0
    reason: str | None = None

    @property
    def tied_share(self) -> float:
        """The share of the time split's held-out interactions that ties decided (0 without any)."""
        return self.tied / self.held_out if self.held_out else 0.0

    def as_dict(self) -> dict[str, Any]:
        """The outcome as plain JSON values, for the report and the manifest."""
        return {"requested": self.requested, "used": self.used, "held_out": self.held_out,
                "decided_by_ties": self.tied, "tied_share": round(self.tied_share, 4), "reason": self.reason}


def _ranks(users: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For rows grouped by user: each row's rank within its user, and its user's row count."""
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if users.size else np.empty(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, users.size])
    return np.arange(users.size) - np.repeat(starts, sizes), np.repeat(sizes, sizes)


def time_split(table: InteractionTable, test_fraction: float = 0.2,
               seed: int = 0) -> tuple[InteractionTable, InteractionTable]:
    """Hold out each user's most recent positive interactions (by their latest event).

    A user with n positive interactions gives ``floor(test_fraction * n)`` of them,
    at least one when n >= 2, never all. Interactions with the same time are
    ordered at random (*seed*).
    """
    test_mask, _, _ = _time_split_mask(table, test_fraction, seed)
    return table.subset(~test_mask), table.subset(test_mask)


def _time_split_mask(table: InteractionTable, test_fraction: float, seed: int) -> tuple[np.ndarray, int, int]:
    """The held-out rows of a time split, how many, and how many of those ties decided."""
    # lexsort's last key is the primary one: user, then time, then a seeded coin for ties.
    tiebreak = np.random.default_rng(seed).random(len(table))
    positive = np.flatnonzero(table.values > 0)
    times = table.last_times.astype(np.int64)
    order = positive[np.lexsort((tiebreak[positive], times[positive], table.users[positive]))]
    rank, size = _ranks(table.users[order])
    held = np.maximum(np.floor(test_fraction * size), (size >= 2).astype(float))
    held = np.minimum(held, size - 1).astype(np.int64)
    test_mask = np.zeros(len(table), dtype=bool)
    held_rows = np.flatnonzero(rank >= size - held)
    test_mask[order[held_rows]] = True
    # A held-out row's user kept their last training row just before their first held-out one.
    last_kept = held_rows - (rank[held_rows] - (size[held_rows] - held[held_rows])) - 1
    tied = int(np.count_nonzero(times[order[held_rows]] == times[order[last_kept]]))
    return test_mask, int(held_rows.shape[0]), tied


def stratified_split(
    table: InteractionTable, test_fraction: float = 0.25, seed: int = 42
) -> tuple[InteractionTable, InteractionTable]:
    """Hold out a random ``test_fraction`` of each user's positive interactions (seeded).

    A user with n positives keeps ``round((1 - test_fraction) * n)`` (at least 1)
    in training, as the stratified split of the evaluation protocol does.
    """
    rng = np.random.default_rng(seed)
    positive = np.flatnonzero(table.values > 0)
    order = positive[np.lexsort((rng.random(len(table))[positive], table.users[positive]))]
    rank, size = _ranks(table.users[order])
    kept = np.maximum(np.round((1 - test_fraction) * size), 1)
    test_mask = np.zeros(len(table), dtype=bool)
    test_mask[order[rank >= kept]] = True
    return table.subset(~test_mask), table.subset(test_mask)


def split(table: InteractionTable, method: str, test_fraction: float,
          seed: int) -> tuple[InteractionTable, InteractionTable, SplitOutcome]:
    """Split on *method*, :data:`TIME` or :data:`RANDOM`: training part, held-out part, and what was done.

    A time split in which ties would decide more than :data:`MAX_TIED_SHARE`
    of the held-out interactions is replaced by the stratified split with the
    same fraction and seed.
    """
    if method == RANDOM:
        return (*stratified_split(table, test_fraction, seed), SplitOutcome(RANDOM, RANDOM))
    if method != TIME:
        raise InvalidTrainingOptions(f"unknown split {method!r}; expected {TIME!r} or {RANDOM!r}")
    test_mask, held_out, tied = _time_split_mask(table, test_fraction, seed)
    outcome = SplitOutcome(TIME, TIME, held_out, tied)
    if outcome.tied_share <= MAX_TIED_SHARE:
        return table.subset(~test_mask), table.subset(test_mask), outcome
    reason = (f"timestamps cannot order the interactions: ties of equal times, not time, would decide {tied} of "
              f"the {held_out} held-out interactions ({outcome.tied_share:.0%}; a bulk import?), so the split is "
              "random, stratified by user")
    return (*stratified_split(table, test_fraction, seed), SplitOutcome(TIME, RANDOM, held_out, tied, reason))
