"""MovieLens ratings as training arrays, read by the event log's own ``u.data`` reader."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chalicelib.config import PROJECT_DIR
from chalicelib.errors import RatingsUnreadable
from chalicelib.eventlog.formats import movielens_100k_rows

#: MovieLens-100k, bundled with its licence for the demo, the tests and the benchmarks.
SAMPLE_RATINGS = PROJECT_DIR / "data" / "movielens-100k" / "u.data"


@dataclass(frozen=True)
class Ratings:
    """Rating events as parallel arrays (ids as strings, unix seconds)."""

    user_ids: np.ndarray
    item_ids: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray


def read_movielens_100k(path: Path) -> Ratings:
    """Read ``u.data`` (tab-separated user, item, rating, unix time).

    Raises
    ------
    RatingsUnreadable
        At the first malformed line, naming it.
    """
    users, items, stars, times = [], [], [], []
    for line_number, row in movielens_100k_rows(path):
        if isinstance(row, str):
            raise RatingsUnreadable(f"{path}: line {line_number}: {row}")
        users.append(row["user_id"])
        items.append(row["item_id"])
        stars.append(row["value"])
        times.append(row["timestamp"])
    return Ratings(
        user_ids=np.array(users, dtype=np.str_),
        item_ids=np.array(items, dtype=np.str_),
        ratings=np.array(stars, dtype=np.float32),
        timestamps=np.array(times, dtype=np.int64),
    )
