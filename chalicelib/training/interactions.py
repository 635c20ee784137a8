"""User × item interaction matrices built with scipy from event arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


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
