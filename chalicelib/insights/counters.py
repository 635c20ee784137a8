"""The insight counter item: the one definition of what the counters table holds, and how events add up.

Content performance and trending read counters kept at ingest, never the event log. One item per
(bucket, dimension):

* partition key ``bucket``: ``h#2026-05-01T13`` (an hour, UTC) or ``d#2026-05-01`` (a day, UTC), from
  the event's own timestamp. Every counter of one bucket shares a partition, so listing a window is one
  Query per bucket, whatever the number of items.
* sort key ``dimension``: ``item#<item_id>``, or ``category#<name>`` for each catalog category of the
  item (an item the catalog does not hold counts under items only).
* ``c_<event_type>`` and ``c_<event_type>@<source>`` (``web``, ``app``, ``chatbot``, ``email``,
  ``import``, or ``none`` for an event without a source): counts, added with UpdateItem ADD, so every
  source lives in the one item and an event costs one write per counter item it touches.
* ``sketch`` (zlib-compressed HyperLogLog registers, :mod:`chalicelib.insights.sketch`) and
  ``sketch_version``: the distinct users, replaced read-modify-write under a version condition.
* ``expires_at``: TTL, :data:`HORIZON` after the bucket ends.

Events older than :data:`HORIZON` are not counted: no window or baseline reaches them (imports of
historic data cost no counter writes).
"""

from __future__ import annotations

import base64
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable, Mapping

from pynamodb.attributes import BinaryAttribute, NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.connection import TableConnection
from pynamodb.connection.base import MetaTable
from pynamodb.models import Model

from chalicelib.eventlog.item import Event
from chalicelib.insights import sketch

HASH_KEY = "bucket"
RANGE_KEY = "dimension"
ITEM = "item#"
CATEGORY = "category#"
HOUR = "h#"
DAY = "d#"
COUNT_PREFIX = "c_"
NO_SOURCE = "none"
#: How far back counters go: a 28-day window and the 28 days before it, and some margin.
HORIZON = timedelta(days=60)

#: (bucket, dimension): the key of a counter item.
CounterKey = tuple[str, str]
#: An item id -> its catalog categories (those it holds; items the catalog does not hold are absent).
CategoriesOf = Callable[[list[str]], Mapping[str, tuple[str, ...]]]


def hour_bucket(moment: datetime) -> str:
    """The hour bucket holding *moment* (UTC)."""
    return f"{HOUR}{moment.astimezone(timezone.utc):%Y-%m-%dT%H}"


def day_bucket(moment: datetime) -> str:
    """The day bucket holding *moment* (UTC)."""
    return f"{DAY}{moment.astimezone(timezone.utc):%Y-%m-%d}"


def bucket_end(bucket: str) -> datetime:
    """When *bucket* ends."""
    if bucket.startswith(HOUR):
        return datetime.strptime(bucket[len(HOUR):], "%Y-%m-%dT%H").replace(tzinfo=timezone.utc) + timedelta(hours=1)
    return datetime.strptime(bucket[len(DAY):], "%Y-%m-%d").replace(tzinfo=timezone.utc) + timedelta(days=1)


def count_attribute(event_type: str, source: str | None = None) -> str:
    """The attribute counting *event_type* events (of every source, or of *source*)."""
    return f"{COUNT_PREFIX}{event_type}" + (f"@{source}" if source else "")


@dataclass
class Tally:
    """What a set of events adds to one counter item: counts by attribute, and the users' hashes."""

    counts: Counter = field(default_factory=Counter)
    users: set[int] = field(default_factory=set)


def tally(events: Iterable[Event], categories_of: CategoriesOf, now: datetime) -> dict[CounterKey, Tally]:
    """What *events* add to each counter item, in memory (the ingest path and the full-scan rebuild both).

    Events older than :data:`HORIZON` before *now* are left out.
    """
    kept = [event for event in events if event.timestamp >= now - HORIZON]
    categories = categories_of(sorted({event.item_id for event in kept})) if kept else {}
    tallies: dict[CounterKey, Tally] = {}
    for event in kept:
        dimensions = [ITEM + event.item_id, *(CATEGORY + name for name in categories.get(event.item_id, ()))]
        user = sketch.user_hash(event.user_id)
        for bucket in (hour_bucket(event.timestamp), day_bucket(event.timestamp)):
            for dimension in dimensions:
                entry = tallies.setdefault((bucket, dimension), Tally())
                entry.counts[count_attribute(event.event_type)] += 1
                entry.counts[count_attribute(event.event_type, event.source or NO_SOURCE)] += 1
                entry.users.add(user)
    return tallies


@dataclass(frozen=True)
class Counts:
    """One counter item as read: its dimension, counts by attribute and distinct-user registers."""

    dimension: str
    counts: dict[str, int]
    registers: Any

    @classmethod
    def from_raw(cls, item: Mapping[str, Any]) -> "Counts":
        """A counter item from DynamoDB JSON."""
        counts = {name: int(value["N"]) for name, value in item.items() if name.startswith(COUNT_PREFIX)}
        data = item.get("sketch", {}).get("B")
        return cls(item[RANGE_KEY]["S"], counts, sketch.decode(binary_value(data)))

    def count(self, event_type: str, source: str | None = None) -> int:
        return self.counts.get(count_attribute(event_type, source), 0)


def binary_value(data: Any) -> bytes | None:
    """The bytes of a DynamoDB binary value as pynamodb's connection answers it (None when absent)."""
    if data is None:
        return None
    if isinstance(data, str):  # DynamoDB JSON through a low-level client carries base64 text
        return base64.b64decode(data)
    return bytes(data)


class CounterRecord(Model):
    """The key schema of the counters table (counts are written by name: see the module docstring)."""

    class Meta:
        table_name = "insights"
        region = "us-east-1"

    bucket = UnicodeAttribute(hash_key=True)
    dimension = UnicodeAttribute(range_key=True)
    sketch = BinaryAttribute(null=True, legacy_encoding=False)
    sketch_version = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)


def counter_model(table_name: str, region: str, host: str | None, *, connect_timeout: float = 2.0,
                  read_timeout: float = 5.0, retries: int = 3) -> type[CounterRecord]:
    """A :class:`CounterRecord` subclass bound to one table, endpoint and timeouts."""
    meta: dict[str, Any] = {"table_name": table_name, "region": region, "connect_timeout_seconds": connect_timeout,
                            "read_timeout_seconds": read_timeout, "max_retry_attempts": retries}
    if host:
        meta["host"] = host
    return type(f"CounterRecord_{table_name}", (CounterRecord,), {"Meta": type("Meta", (), meta)})


def counter_connection(model: type[CounterRecord], retries: int | None = None) -> TableConnection:
    """A low-level connection to *model*'s table (counts have names the model cannot declare)."""
    meta = model.Meta
    schema = MetaTable({
        "TableName": meta.table_name,
        "KeySchema": [{"AttributeName": HASH_KEY, "KeyType": "HASH"},
                      {"AttributeName": RANGE_KEY, "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": HASH_KEY, "AttributeType": "S"},
                                 {"AttributeName": RANGE_KEY, "AttributeType": "S"}],
    })
    return TableConnection(meta.table_name, region=meta.region, host=getattr(meta, "host", None),
                           connect_timeout_seconds=meta.connect_timeout_seconds,
                           read_timeout_seconds=meta.read_timeout_seconds,
                           max_retry_attempts=meta.max_retry_attempts if retries is None else retries,
                           meta_table=schema)


def ensure_counter_table(model: type[CounterRecord]) -> bool:
    """Create the counters table (on-demand, TTL where the endpoint supports it) unless it exists."""
    if model.exists():
        return False
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True, ignore_update_ttl_errors=True)
    return True
