"""Business rules on answers: which of the model's items an answer may hold.

An :class:`ItemFilter` is what a request asks for (categories, exclusions,
availability, a price range, keywords); :class:`ItemFilters` turns it into a
boolean mask over the model's item rows, from the instance's catalog index,
so that ranking applies it before the top-N cut. Blocked items are masked
out of every answer, asked or not.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from chalicelib.catalog.index import CatalogIndex, CatalogIndexCache
from chalicelib.errors import CatalogUnavailable
from chalicelib.serving.recommender import Recommender


@dataclass(frozen=True)
class ItemFilter:
    """What a request lets into its answer.

    Items the catalog does not hold pass every rule but a category, a price
    bound or a query: nothing is known of them.
    """

    categories: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    available_only: bool = True
    min_price: float | None = None
    max_price: float | None = None
    query: str | None = None

    @property
    def needs_catalog(self) -> bool:
        """Whether the filter cannot be applied without the catalog index."""
        return bool(self.categories) or self.min_price is not None or self.max_price is not None or bool(self.query)


class ModelView:
    """One catalog index seen through one model's item rows."""

    def __init__(self, index: CatalogIndex, recommender: Recommender) -> None:
        self.index = index
        self.recommender = recommender
        n_items = recommender.n_items
        # Model row of each catalog row (-1: an item the model does not know), and back.
        self.model_row = recommender.item_rows(index.item_ids)
        known = self.model_row >= 0
        self.catalog_row = np.full(n_items, -1, dtype=np.int64)
        self.catalog_row[self.model_row[known]] = np.flatnonzero(known)
        in_catalog = self.catalog_row >= 0
        self.blocked = np.zeros(n_items, dtype=bool)
        self.blocked[in_catalog] = index.blocked[self.catalog_row[in_catalog]]
        self.unavailable = np.zeros(n_items, dtype=bool)
        self.unavailable[in_catalog] = ~index.available[self.catalog_row[in_catalog]]
        self.prices = np.full(n_items, np.nan)
        self.prices[in_catalog] = index.prices[self.catalog_row[in_catalog]]
        # The masks of the two filters nearly every request uses, shared read-only rather than rebuilt.
        self.unblocked = _read_only(~self.blocked)
        self.available = _read_only(~self.blocked & ~self.unavailable)

    def model_rows(self, catalog_rows: np.ndarray) -> np.ndarray:
        rows = self.model_row[catalog_rows]
        return rows[rows >= 0]


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


class ItemFilters:
    """Masks of allowed items for a recommender, from the instance's catalog index.

    Parameters
    ----------
    index_cache: the catalog index of this instance.
    """

    def __init__(self, index_cache: CatalogIndexCache) -> None:
        self._index_cache = index_cache
        self._lock = threading.Lock()
        self._view: ModelView | None = None

    def _view_for(self, recommender: Recommender) -> ModelView | None:
        index = self._index_cache.current()
        if index is None:
            return None
        view = self._view
        if view is None or view.index is not index or view.recommender is not recommender:
            view = ModelView(index, recommender)  # once per model and index version, not per request
            with self._lock:
                self._view = view
        return view

    def allowed(self, recommender: Recommender, item_filter: ItemFilter) -> np.ndarray | None:
        """A boolean mask over *recommender*'s item rows of the items an answer may hold (never to be written).

        None when the catalog index is unavailable and the filter can do
        without it (blocked and unavailable items then rely on the answer's
        own catalog read, see :mod:`chalicelib.serving.presenter`).

        Raises
        ------
        CatalogUnavailable
            When the filter needs the catalog (a category, a price bound, a
            query) and it cannot be read.
        """
        view = self._view_for(recommender)
        excluded = [row for row in map(recommender.item_row, item_filter.exclude) if row >= 0]
        if view is None:
            if item_filter.needs_catalog:
                raise CatalogUnavailable("the catalog cannot be read to apply the filters; retry shortly")
            if not excluded:
                return None
            allowed = np.ones(recommender.n_items, dtype=bool)
            allowed[excluded] = False
            return allowed
        shared = view.available if item_filter.available_only else view.unblocked
        if not (excluded or item_filter.needs_catalog):
            return shared  # read-only: no answer writes into its mask
        allowed = shared.copy()
        if excluded:
            allowed[excluded] = False
        if item_filter.categories:
            in_categories = np.zeros_like(allowed)
            in_categories[view.model_rows(view.index.rows_in_categories(item_filter.categories))] = True
            allowed &= in_categories
        if item_filter.min_price is not None:
            allowed &= view.prices >= item_filter.min_price  # an unknown price (NaN) never passes
        if item_filter.max_price is not None:
            allowed &= view.prices <= item_filter.max_price
        if item_filter.query:
            matching = np.zeros_like(allowed)
            matching[view.model_rows(view.index.rows_matching(item_filter.query))] = True
            allowed &= matching
        return allowed

    def blocked_mask(self, recommender: Recommender) -> np.ndarray | None:
        """A boolean mask over *recommender*'s item rows of blocked items (None when the index is unavailable)."""
        view = self._view_for(recommender)
        return view.blocked if view is not None else None
