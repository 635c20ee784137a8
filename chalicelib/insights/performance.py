"""Content performance: views, clicks, add-to-carts, purchases, distinct users and rates per item or
category over a window, against the window just before it; the answers of ``GET /insights/items`` and
``GET /insights/categories``.

Windows are whole UTC buckets ending with the current one (so the newest bucket is partial):

* ``1h``: the current hour bucket; ``24h``: it and the 23 hour buckets before (23 to 24 hours);
* ``7d``: today's day bucket and the 6 before; ``28d``: today's and the 27 before.

The previous window is the same number of buckets just before. Everything is read from the counters
(:class:`CounterReader`): a listing costs one Query per bucket of both windows (2 for ``1h``, 48 for
``24h``, 14 for ``7d``, 56 for ``28d``), whatever the number of items, and is kept
:data:`CACHE_SECONDS` in the warm instance, so the pages of one listing come from one snapshot.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import numpy as np

from chalicelib.catalog.cache import CatalogCache
from chalicelib.catalog.index import fold_text
from chalicelib.errors import InvalidRequest
from chalicelib.insights import sketch
from chalicelib.insights.counter_reader import CounterReader
from chalicelib.insights.counters import CATEGORY, COUNT_PREFIX, ITEM, Counts, day_bucket, hour_bucket

#: window -> (hour buckets?, how many buckets).
WINDOWS = {"1h": (True, 1), "24h": (True, 24), "7d": (False, 7), "28d": (False, 28)}
SOURCES = ("web", "app", "chatbot", "email", "import", "none")
SORTS = ("views", "clicks", "add_to_carts", "purchases", "events", "distinct_users", "click_through_rate",
         "conversion_rate", "change")
#: The event types shown by name (others count in ``events``).
SHOWN_TYPES = {"views": "view", "clicks": "click", "add_to_carts": "add_to_cart", "purchases": "purchase"}
#: How long a listing's snapshot is reused by the warm instance.
CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class InsightsQuery:
    """A validated listing request."""

    window: str = "7d"
    source: str | None = None
    category: str | None = None
    sort: str = "views"
    order: str = "desc"
    limit: int = 20
    offset: int = 0

    def fingerprint(self) -> str:
        """What a cursor is bound to: the same listing, another page."""
        text = json.dumps([self.window, self.source, self.category, self.sort, self.order])
        return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


def make_cursor(query: InsightsQuery, offset: int) -> str:
    """The opaque cursor of the page of *query* starting at *offset*."""
    raw = json.dumps({"offset": offset, "query": query.fingerprint()}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str, query: InsightsQuery) -> int:
    """The offset a cursor of *query* points at; refuses anything else."""
    try:
        entry = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, bound = entry["offset"], entry["query"]
    except (ValueError, TypeError, KeyError):
        raise InvalidRequest("cursor is not one this API gave", "cursor") from None
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= 10**7:
        raise InvalidRequest("cursor is not one this API gave", "cursor")
    if bound != query.fingerprint():
        raise InvalidRequest("cursor belongs to another listing (window, source, category, sort or order "
                             "changed); start again without it", "cursor")
    return offset


def window_buckets(window: str, now: datetime) -> tuple[list[str], list[str], datetime, datetime]:
    """(current buckets, previous buckets, start of the current window, start of the previous one)."""
    hourly, size = WINDOWS[window]
    now = now.astimezone(timezone.utc)
    if hourly:
        top, step, name = now.replace(minute=0, second=0, microsecond=0), timedelta(hours=1), hour_bucket
    else:
        top, step, name = now.replace(hour=0, minute=0, second=0, microsecond=0), timedelta(days=1), day_bucket
    starts = [top - step * k for k in range(2 * size)]
    return ([name(t) for t in starts[:size]], [name(t) for t in starts[size:]], starts[size - 1],
            starts[2 * size - 1])


def _totals(rows: list[Counts]) -> dict[str, tuple[dict[str, int], np.ndarray]]:
    """Counts summed and sketches merged per dimension over buckets."""
    merged: dict[str, tuple[dict[str, int], np.ndarray]] = {}
    for row in rows:
        counts, registers = merged.setdefault(row.dimension, ({}, sketch.empty()))
        for name, value in row.counts.items():
            counts[name] = counts.get(name, 0) + value
        np.maximum(registers, row.registers, out=registers)
    return merged


def _figures(counts: dict[str, int], registers: np.ndarray | None, source: str | None) -> dict[str, Any]:
    suffix = f"@{source}" if source else ""
    figures: dict[str, Any] = {name: counts.get(f"{COUNT_PREFIX}{event_type}{suffix}", 0)
                               for name, event_type in SHOWN_TYPES.items()}
    figures["events"] = sum(value for name, value in counts.items()
                            if (name.endswith(suffix) if source else "@" not in name))
    figures["distinct_users"] = sketch.estimate(registers) if registers is not None else None
    views = figures["views"]
    figures["click_through_rate"] = round(figures["clicks"] / views, 4) if views else None
    figures["conversion_rate"] = round(figures["purchases"] / views, 4) if views else None
    return figures


def change_of(current: int, previous: int) -> float | None:
    """Relative change of events against the previous window (None when it had none)."""
    return round((current - previous) / previous, 4) if previous else None


class ContentPerformance:
    """The content performance listings, from the counters.

    Parameters
    ----------
    reader: the counters.
    catalog: titles and categories of the items listed.
    clock: now (tests pass a fixed one); monotonic: the cache's clock.
    """

    def __init__(self, reader: CounterReader, catalog: CatalogCache,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._reader = reader
        self._catalog = catalog
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}

    def items(self, query: InsightsQuery) -> dict[str, Any]:
        """``GET /insights/items``."""
        return self._listing(ITEM, "item_id", query)

    def categories(self, query: InsightsQuery) -> dict[str, Any]:
        """``GET /insights/categories``."""
        return self._listing(CATEGORY, "category", query)

    def _listing(self, prefix: str, id_field: str, query: InsightsQuery) -> dict[str, Any]:
        now = self._clock()
        snapshot = self._snapshot(prefix, query.window, now)
        rows = []
        for dimension, (current, previous) in snapshot["dimensions"].items():
            shown = _figures(current[0], None if query.source else current[1], query.source)
            before = _figures(previous[0], None if query.source else previous[1], query.source)
            if shown["events"] == 0 and before["events"] == 0:
                continue
            shown["previous"] = {name: before[name] for name in (*SHOWN_TYPES, "events", "distinct_users")}
            shown["change"] = change_of(shown["events"], before["events"])
            rows.append({id_field: dimension[len(prefix):], **shown})
        if query.category is not None and prefix == ITEM:
            rows = self._in_category(rows, query.category)
        rows.sort(key=lambda row: row[id_field])
        present = [row for row in rows if row[query.sort] is not None]
        present.sort(key=lambda row: row[query.sort], reverse=query.order == "desc")
        rows = present + [row for row in rows if row[query.sort] is None]  # unknown rates and changes last
        page = rows[query.offset:query.offset + query.limit]
        if prefix == ITEM:
            self._describe(page)
        end = query.offset + len(page)
        return {"window": query.window, "from": snapshot["from"], "to": now.isoformat(timespec="seconds"),
                "previous_from": snapshot["previous_from"], "source": query.source, "category": query.category,
                "sort": query.sort, "order": query.order, "total": len(rows), "items" if prefix == ITEM else "categories": page,
                "next_cursor": make_cursor(query, end) if end < len(rows) else None}

    def _snapshot(self, prefix: str, window: str, now: datetime) -> dict[str, Any]:
        current, previous, start, previous_start = window_buckets(window, now)
        key = (prefix, window, current[0])
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and self._monotonic() - cached[0] < CACHE_SECONDS:
                return cached[1]
        read = self._reader.read(current + previous, prefix)
        now_totals = _totals([row for bucket in current for row in read[bucket]])
        before_totals = _totals([row for bucket in previous for row in read[bucket]])
        empty: tuple[dict[str, int], np.ndarray] = ({}, sketch.empty())
        dimensions = {dimension: (now_totals.get(dimension, empty), before_totals.get(dimension, empty))
                      for dimension in sorted(set(now_totals) | set(before_totals))}
        snapshot = {"dimensions": dimensions, "from": start.isoformat(timespec="seconds"),
                    "previous_from": previous_start.isoformat(timespec="seconds")}
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k[:2] != key[:2]}  # one bucket per listing
            self._cache[key] = (self._monotonic(), snapshot)
        return snapshot

    def _in_category(self, rows: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
        wanted = fold_text(category)
        items = self._catalog.items([row["item_id"] for row in rows])
        return [row for row in rows if row["item_id"] in items
                and any(fold_text(name) == wanted for name in items[row["item_id"]].categories)]

    def _describe(self, page: list[dict[str, Any]]) -> None:
        items = self._catalog.items([row["item_id"] for row in page])
        for row in page:
            item = items.get(row["item_id"])
            if item is not None:
                row["title"], row["categories"] = item.title, list(item.categories)
