"""Catalog items kept in the warm instance, so that an answer costs at most one batch read.

Entries live ``ttl_seconds`` (a blocked or edited item shows within that
time) and at most ``max_items`` are kept (the oldest read go first), so
memory stays bounded whatever the catalog's size. Ids the catalog does not
hold are remembered too, so an item missing from the catalog costs no read
per answer either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable

from chalicelib.catalog.item import CatalogItem
from chalicelib.catalog.store import Catalog
from chalicelib.errors import CatalogUnavailable

logger = logging.getLogger(__name__)


class CatalogCache:
    """Read-through cache of :class:`Catalog` items by id.

    Parameters
    ----------
    catalog: where items are read from.
    ttl_seconds: how long an entry (or the absence of one) is trusted.
    max_items: how many entries are kept at most.
    clock: monotonic clock, replaceable in tests.
    """

    #: How long answers skip the catalog after a failed read.
    PAUSE_AFTER_FAILURE_SECONDS = 5.0

    def __init__(self, catalog: Catalog, ttl_seconds: float, max_items: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._catalog = catalog
        self._ttl = ttl_seconds
        self._max_items = max_items
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, CatalogItem | None]] = OrderedDict()
        self._down_until = float("-inf")

    def forget(self, item_ids: list[str]) -> None:
        """Drop *item_ids*' entries: they changed, the next answer reads them again."""
        with self._lock:
            for item_id in item_ids:
                self._entries.pop(item_id, None)

    def items(self, item_ids: list[str]) -> dict[str, CatalogItem]:
        """The catalog items among *item_ids*, by id: one batch read for those not cached or expired.

        When the catalog cannot be read, what is cached (even expired) is
        returned and the rest is left out: answers go on without their titles
        rather than fail.
        """
        now = self._clock()
        found: dict[str, CatalogItem] = {}
        missing: list[str] = []
        with self._lock:
            for item_id in item_ids:
                entry = self._entries.get(item_id)
                if entry is not None and now - entry[0] < self._ttl:
                    if entry[1] is not None:
                        found[item_id] = entry[1]
                else:
                    missing.append(item_id)
        if not missing:
            return found
        try:
            if now < self._down_until:
                raise CatalogUnavailable("the catalog failed a moment ago")
            read = self._catalog.get_many(missing)
        except CatalogUnavailable:
            # For a few seconds, answers do not wait on a catalog that just failed.
            self._down_until = max(self._down_until, now + min(self._ttl, self.PAUSE_AFTER_FAILURE_SECONDS))
            logger.warning("catalog unreadable; %d items answered without their catalog fields", len(missing))
            with self._lock:
                stale = {item_id: self._entries[item_id][1] for item_id in missing if item_id in self._entries}
            return {**found, **{item_id: item for item_id, item in stale.items() if item is not None}}
        with self._lock:
            for item_id in missing:
                self._entries[item_id] = (now, read.get(item_id))
                self._entries.move_to_end(item_id)
            while len(self._entries) > self._max_items:
                self._entries.popitem(last=False)
        return {**found, **read}
