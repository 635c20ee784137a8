"""Held-out splits of an interaction table, without leakage between the parts.

Only positive interactions are ever held out (a dislike is no hit to find);
negative ones always stay in training. Every user keeps at least one
positive interaction in training.
"""

from __future__ import annotations

import numpy as np

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.training.interactions import InteractionTable

TIME = "time"
RANDOM = "random"


def _positions_by_user(table: InteractionTable, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row positions of positive interactions sorted by user then *order_key*, their rank and user size."""
    positive = np.flatnonzero(table.values > 0)
    order = positive[np.lexsort((order_key[positive], table.users[positive]))]
    users = table.users[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]]) if users.size else np.empty(0, dtype=np.int64)
    sizes = np.diff(np.r_[starts, users.size])
    rank = np.arange(users.size) - np.repeat(starts, sizes)
    return order, rank, np.repeat(sizes, sizes)


def time_split(table: InteractionTable, test_fraction: float = 0.2) -> tuple[InteractionTable, InteractionTable]:
    """Hold out each user's most recent positive interactions (by their latest event).

    A user with n positive interactions gives ``floor(test_fraction * n)`` of them,
    at least one when n >= 2, never all.
    """
    order, rank, size = _positions_by_user(table, table.last_times.astype(np.int64))
    held = np.maximum(np.floor(test_fraction * size), (size >= 2).astype(float))
    held = np.minimum(held, size - 1)
    test_mask = np.zeros(len(table), dtype=bool)
    test_mask[order[rank >= size - held]] = True
    return table.subset(~test_mask), table.subset(test_mask)


def stratified_split(
    table: InteractionTable, test_fraction: float = 0.25, seed: int = 42
) -> tuple[InteractionTable, InteractionTable]:
    """Hold out a random ``test_fraction`` of each user's positive interactions (seeded).

    A user with n positives keeps ``round((1 - test_fraction) * n)`` (at least 1)
    in training, as the stratified split of the evaluation protocol does.
    """
    rng = np.random.default_rng(seed)
    order, rank, size = _positions_by_user(table, rng.random(len(table)))
    kept = np.maximum(np.round((1 - test_fraction) * size), 1)
    test_mask = np.zeros(len(table), dtype=bool)
    test_mask[order[rank >= kept]] = True
    return table.subset(~test_mask), table.subset(test_mask)


def split(table: InteractionTable, method: str, test_fraction: float, seed: int) -> tuple[InteractionTable, InteractionTable]:
    """Dispatch on *method*: :data:`TIME` or :data:`RANDOM`."""
    if method == TIME:
        return time_split(table, test_fraction)
    if method == RANDOM:
        return stratified_split(table, test_fraction, seed)
    raise InvalidTrainingOptions(f"unknown split {method!r}; expected {TIME!r} or {RANDOM!r}")
