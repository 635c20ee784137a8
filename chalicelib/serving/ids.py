"""External ids to model rows, by binary search: nothing built per id when a model loads."""

from __future__ import annotations

from typing import Iterable

import numpy as np


class IdIndex:
    """The rows of external ids in one id array of a model.

    Lookups are binary searches over the ids' sorted order, which the artifact
    stores: a dict of a million ids took most of a million-item model's load.

    Parameters
    ----------
    ids: the id of each row (a numpy string array).
    order: the permutation that sorts *ids* (``ids[order]`` strictly increasing).
    """

    def __init__(self, ids: np.ndarray, order: np.ndarray) -> None:
        self._ids = ids
        self._order = order

    def __len__(self) -> int:
        return int(self._ids.shape[0])

    def __contains__(self, external_id: object) -> bool:
        return isinstance(external_id, str) and self.row(external_id) >= 0

    def rows(self, external_ids: Iterable[str] | np.ndarray) -> np.ndarray:
        """The row of each id (int64), -1 where the model does not know it."""
        wanted = np.asarray(external_ids if isinstance(external_ids, np.ndarray) else list(external_ids), dtype=np.str_)
        if wanted.size == 0 or self._ids.size == 0:
            return np.full(wanted.shape, -1, dtype=np.int64)
        # An id longer than every stored one is cut by the search but cannot pass the equality check.
        positions = np.searchsorted(self._ids, wanted, sorter=self._order)
        rows = self._order[np.minimum(positions, self._ids.shape[0] - 1)].astype(np.int64)
        rows[self._ids[rows] != wanted] = -1
        return rows

    def row(self, external_id: str) -> int:
        """The row of one id, or -1."""
        return int(self.rows([external_id])[0])
