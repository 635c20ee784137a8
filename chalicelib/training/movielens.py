"""Readers of the bundled MovieLens sample."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Ratings:
    """Rating events as parallel arrays (ids as strings, unix seconds)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray


def read_movielens_100k(path: Path) -> Ratings:
    """Read ``u.data`` (tab-separated user, item, rating, unix time)."""
    table = np.loadtxt(path, dtype=np.int64, delimiter="\t", ndmin=2)
    if table.shape[1] != 4:
        raise ValueError(f"{path}: expected 4 tab-separated columns, found {table.shape[1]}")
    return Ratings(
        user_ids=table[:, 0].astype(str),
        item_ids=table[:, 1].astype(str),
        ratings=table[:, 2].astype(np.float32),
        timestamps=table[:, 3],
    )
