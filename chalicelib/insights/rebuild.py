"""The insight counters recomputed from a full scan of the event log, to repair drift.

:func:`scan_tallies` is what the counters should hold: every stored event within the horizon, tallied
by the same :func:`chalicelib.insights.counters.tally` as the ingest path. :func:`rebuild` writes
those exact values over the counters (a put per counter item) and deletes the counter items of the
horizon the scan found no event for (those of erased users' events, say), found by a scan of the
counters' keys. Events written while it runs may be
counted twice or missed: run it when ingest is quiet, or run it again.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Callable

from pynamodb.connection import TableConnection

from chalicelib.eventlog.item import Event, EventRecord, is_event_key, table_connection
from chalicelib.insights import sketch
from chalicelib.insights.counters import (
    CATEGORY,
    HASH_KEY,
    HORIZON,
    ITEM,
    RANGE_KEY,
    CategoriesOf,
    CounterKey,
    Tally,
    bucket_end,
    day_bucket,
    hour_bucket,
    tally,
)

logger = logging.getLogger(__name__)


def scanned_events(model: type[EventRecord]) -> list[Event]:
    """Every event of the log (erasure markers left out), by a full Scan."""
    table = table_connection(model)
    events: list[Event] = []
    start = None
    while True:
        page = table.scan(exclusive_start_key=start)
        events += [model.from_raw_data(item).to_event() for item in page.get("Items", [])
                   if is_event_key(item["record_key"]["S"])]
        start = page.get("LastEvaluatedKey")
        if not start:
            return events


def scan_tallies(model: type[EventRecord], categories_of: CategoriesOf, now: datetime) -> dict[CounterKey, Tally]:
    """What the counters should hold: the full scan's events tallied as ingest tallies them."""
    return tally(scanned_events(model), categories_of, now)


def horizon_buckets(now: datetime) -> list[str]:
    """Every hour and day bucket from :data:`HORIZON` ago to now."""
    start = now - HORIZON
    hours = int(HORIZON / timedelta(hours=1)) + 1
    return sorted({hour_bucket(start + timedelta(hours=k)) for k in range(hours + 1)}
                  | {day_bucket(start + timedelta(days=k)) for k in range(HORIZON.days + 2)})


def counter_keys(counters: TableConnection) -> list[CounterKey]:
    """The key of every counter item, by a Scan of the keys alone.

    One pass over the table rather than a Query per bucket of the horizon (some 1,500 hour and day
    buckets, most of them empty): TTL keeps the table to the horizon, so the scan reads little else.
    """
    keys: list[CounterKey] = []
    start = None
    while True:
        page = counters.scan(attributes_to_get=[HASH_KEY, RANGE_KEY], exclusive_start_key=start)
        keys += [(item[HASH_KEY]["S"], item[RANGE_KEY]["S"]) for item in page.get("Items", [])]
        start = page.get("LastEvaluatedKey")
        if not start:
            return keys


def rebuild(events: type[EventRecord], counters: TableConnection, categories_of: CategoriesOf, now: datetime,
            progress: Callable[[int], None] = lambda n: None) -> tuple[int, int]:
    """Overwrite the counters with the full scan's values; returns (items written, stale items deleted)."""
    expected = scan_tallies(events, categories_of, now)
    for (bucket, dimension), entry in expected.items():
        registers = sketch.empty()
        sketch.add(registers, entry.users)
        attributes = {name: {"N": str(count)} for name, count in entry.counts.items()}
        attributes.update({"sketch": {"B": sketch.encode(registers)}, "sketch_version": {"N": "1"},
                           "expires_at": {"N": str(int((bucket_end(bucket) + HORIZON).timestamp()))}})
        counters.put_item(bucket, dimension, attributes=attributes)
        progress(1)
    horizon = set(horizon_buckets(now))
    deleted = 0
    for key in counter_keys(counters):
        if key[0] in horizon and key[1].startswith((ITEM, CATEGORY)) and key not in expected:
            counters.delete_item(*key)
            deleted += 1
    logger.info("rebuilt %d counter items, deleted %d stale ones", len(expected), deleted)
    return len(expected), deleted
