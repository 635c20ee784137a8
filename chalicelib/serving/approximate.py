"""Approximate top-N over inverted-file indexes (IVF), in numpy only.

Training clusters the items twice (:mod:`chalicelib.training.approximate_index`):
by their factors (k-means), for the inner-product queries of users and
sessions, and by their directions (spherical k-means), for the cosine
queries of "more like this", whose neighbours the first clustering scatters.
A query scores its index's centroids, takes the best clusters, and scores only
their items: at a million items a few percent of the catalogue.

The artifact stores the items of each factor cluster as one contiguous block
of rows, so those clusters are slices; a direction cluster's rows are listed
in ``rows``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class InvertedFileIndex:
    """Clusters of item rows: list ``l`` holds positions ``offsets[l]:offsets[l + 1]`` of *rows*
    (of the item rows themselves when *rows* is None).

    ``probes`` is how many lists a query scores, calibrated at training time
    to a recall@10 target (see the manifest's ``approximate_index``).
    """

    centroids: np.ndarray
    offsets: np.ndarray
    probes: int
    rows: np.ndarray | None = None

    @property
    def n_lists(self) -> int:
        return int(self.centroids.shape[0])

    def list_order(self, query: np.ndarray) -> np.ndarray:
        """Every list, best first for *query*."""
        return np.argsort(-(self.centroids @ query), kind="stable")

    def candidate_rows(self, query: np.ndarray, probes: int | None = None) -> np.ndarray:
        """The item rows of the *probes* lists whose centroids score best for *query*.

        Ascending when the lists are blocks of rows, so ties still go to the
        lower row as in exact search; in list order otherwise.
        """
        probes = self.probes if probes is None else probes
        if probes >= self.n_lists:
            chosen = np.arange(self.n_lists)
        else:
            chosen = np.argpartition(-(self.centroids @ query), probes - 1)[:probes]
            chosen.sort()
        starts = self.offsets[chosen]
        lengths = self.offsets[chosen + 1] - starts
        # The concatenated ranges starts[i] .. starts[i] + lengths[i], without a Python loop.
        shifts = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
        positions = np.arange(shifts.shape[0], dtype=np.int64) + shifts
        return positions if self.rows is None else self.rows[positions].astype(np.int64)
