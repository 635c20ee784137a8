"""What filters and text search need of every catalog item, as arrays, kept fresh in the warm instance.

A filter ("only Comedy", "in stock", "under 20 EUR", "never blocked items")
must apply before the top-N cut, so it needs every item's flags at once, not
the few items an answer shows. :class:`CatalogIndex` holds them as numpy
arrays built from one scan of the catalog table; :class:`CatalogIndexCache`
keeps one per instance and rebuilds it so that it is never older than the
catalog TTL (a blocked item disappears within that time), in the background
while traffic keeps it warm.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
import time
import unicodedata
from collections import defaultdict
from typing import Callable, Iterable

import numpy as np

from chalicelib.catalog.item import CatalogItem
from chalicelib.errors import CatalogUnavailable

logger = logging.getLogger(__name__)

_WORD = re.compile(r"[^\W_]+")


def fold_text(text: str) -> str:
    """*text* as search compares it: accents removed, case folded ("Amélie" -> "amelie")."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(char for char in decomposed if not unicodedata.combining(char)).casefold()


def words_of(text: str) -> list[str]:
    """The words of *text* as search compares them: runs of letters and digits, folded."""
    return _WORD.findall(fold_text(text))


def _searchable_text(item: CatalogItem) -> Iterable[str]:
    yield item.title
    yield from item.categories
    for value in item.attributes.values():
        if isinstance(value, str):
            yield value
        elif isinstance(value, list):
            yield from (entry for entry in value if isinstance(entry, str))


class CatalogIndex:
    """Every catalog item's filter fields as arrays over catalog rows (one row per item).

    Categories compare folded (case and accents ignored). Text search is by
    word prefix: a query word matches an item when some word of its title,
    categories or string attributes starts with it.
    """

    def __init__(self, items: Iterable[CatalogItem]) -> None:
        ids: list[str] = []
        available: list[bool] = []
        blocked: list[bool] = []
        prices: list[float] = []
        by_category: dict[str, list[int]] = defaultdict(list)
        by_word: dict[str, list[int]] = defaultdict(list)
        for row, item in enumerate(items):
            ids.append(item.item_id)
            available.append(item.available)
            blocked.append(item.blocked)
            prices.append(item.price.amount if item.price is not None else np.nan)
            for category in {fold_text(category) for category in item.categories}:
                by_category[category].append(row)
            for word in {word for text in _searchable_text(item) for word in words_of(text)}:
                by_word[word].append(row)
        self.item_ids = ids
        self.available = np.array(available, dtype=bool)
        self.blocked = np.array(blocked, dtype=bool)
        self.prices = np.array(prices, dtype=np.float64)
        self._by_category = {name: np.array(rows, dtype=np.int64) for name, rows in by_category.items()}
        self._vocabulary = sorted(by_word)
        self._by_word = [np.array(by_word[word], dtype=np.int64) for word in self._vocabulary]

    def __len__(self) -> int:
        return len(self.item_ids)

    def rows_in_categories(self, categories: Iterable[str]) -> np.ndarray:
        """Catalog rows of the items in at least one of *categories*."""
        found = [self._by_category.get(fold_text(category)) for category in categories]
        found = [rows for rows in found if rows is not None]
        return np.unique(np.concatenate(found)) if found else np.empty(0, dtype=np.int64)

    def rows_matching(self, query: str) -> np.ndarray:
        """Catalog rows of the items that match every word of *query* (by word prefix)."""
        matched: np.ndarray | None = None
        for word in dict.fromkeys(words_of(query)):
            start = bisect.bisect_left(self._vocabulary, word)
            end = bisect.bisect_left(self._vocabulary, word + "\U0010ffff")
            rows = (np.unique(np.concatenate(self._by_word[start:end])) if end > start
                    else np.empty(0, dtype=np.int64))
            matched = rows if matched is None else np.intersect1d(matched, rows, assume_unique=True)
            if matched.size == 0:
                break
        return matched if matched is not None else np.empty(0, dtype=np.int64)


class CatalogIndexCache:
    """The instance's :class:`CatalogIndex`, never older than *ttl_seconds* while the catalog answers.

    One thread at a time rebuilds it, from a full read of the catalog (seconds
    for a large catalog). A request finding the index older than half the TTL
    starts that rebuild and goes on with the current index, so with traffic
    the index is never older than the TTL; after a longer idle spell the first
    requests still use the old one while it is rebuilt, and answers drop any
    item their own catalog read finds blocked meanwhile
    (:mod:`chalicelib.serving.presenter`). A cold instance's requests wait for
    the first index, at most *wait_seconds*: a slow catalog delays an answer
    by that much, never by its whole read. When the catalog cannot be read,
    the last index is kept (None if there never was one) and for a few
    seconds none is read again.

    Parameters
    ----------
    read_all: reads every catalog item (one scan of the table).
    ttl_seconds: the most an index may lag behind the catalog while traffic keeps it warm.
    wait_seconds: the longest a request of a cold instance waits for the first index.
    clock: monotonic clock, replaceable in tests.
    """

    PAUSE_AFTER_FAILURE_SECONDS = 5.0

    def __init__(self, read_all: Callable[[], Iterable[CatalogItem]], ttl_seconds: float, wait_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read_all = read_all
        self._ttl = ttl_seconds
        self._wait = wait_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._rebuilding: threading.Thread | None = None
        self._index: CatalogIndex | None = None
        self._built_at = float("-inf")
        self._down_until = float("-inf")
        self._changed = False

    def changed(self, item_ids: list[str] | None = None) -> None:
        """The catalog changed (through this instance): the next request waits for a rebuild, as a cold one does."""
        with self._lock:
            self._changed = True
            self._down_until = float("-inf")

    def current(self) -> CatalogIndex | None:
        """The index to filter with now, or None when the catalog has not been readable yet."""
        now = self._clock()
        if now < self._down_until:
            return self._index  # the catalog failed a moment ago: no request waits on it, no read is started
        if self._index is None or self._changed:
            self._start_rebuild().join(self._wait)
        elif now - self._built_at >= self._ttl / 2:
            self._start_rebuild()
        return self._index

    def _rebuild(self) -> None:
        started = self._clock()
        with self._lock:
            self._changed = False  # a change after this point asks for another rebuild
        try:
            index = CatalogIndex(self._read_all())
        except CatalogUnavailable as exc:
            self._down_until = self._clock() + self.PAUSE_AFTER_FAILURE_SECONDS
            logger.warning("catalog index not rebuilt, %s one: %s",
                           "keeping the last" if self._index is not None else "filtering without", exc)
            return
        with self._lock:
            if started >= self._built_at:
                self._index, self._built_at = index, started

    def _start_rebuild(self) -> threading.Thread:
        with self._lock:
            if self._rebuilding is None or not self._rebuilding.is_alive():
                self._rebuilding = threading.Thread(target=self._rebuild, name="catalog-index", daemon=True)
                self._rebuilding.start()
            return self._rebuilding

    def wait_for_rebuild(self, timeout: float | None = None) -> None:
        """Wait for a rebuild under way to finish (tests, shutdown)."""
        thread = self._rebuilding
        if thread is not None:
            thread.join(timeout)
