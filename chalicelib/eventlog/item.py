"""The event item: the one definition of what the event log stores.

Written by the API and the importer, read by real-time serving, training's
scan and export readers, and the benchmarks. Nobody else builds or slices
keys: they call the functions here.

Layout of the table (one partition per user):

* ``user_id`` (partition key) and ``record_key`` (sort key): ``e#<event_id>``
  for an event, ``erased`` for the erasure marker. The key is derived from
  the event id alone, so storing the same event twice writes the same item:
  idempotency holds with plain ``BatchWriteItem`` (which cannot be
  conditional), whatever the arrival time of a retry.
* local secondary index ``by_time`` on ``time_key`` =
  ``<UTC timestamp, ms>#<event_id>`` (``2026-01-01T12:00:00.000Z#<id>``): a
  user's events in time order, so "the 50 latest" is one Query. The marker's
  ``~erased`` sorts after every timestamp, so that same Query returns it first.
* ``received_at``: when the log stored the event; serving compares it with a
  model's training cutoff. ``expires_at``: the TTL attribute, when retention is on.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Sequence

import numpy as np
from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.connection import TableConnection
from pynamodb.connection.base import MetaTable
from pynamodb.indexes import AllProjection, LocalSecondaryIndex
from pynamodb.models import Model

HASH_KEY = "user_id"
RANGE_KEY = "record_key"
EVENT_KEY_PREFIX = "e#"
ERASED_KEY = "erased"
ERASED_TIME_KEY = "~erased"
TIME_INDEX = "by_time"
#: Characters of a time key that hold the instant: ``YYYY-MM-DDTHH:MM:SS.mmm``.
_TIME_KEY_INSTANT = 23

# What DynamoDB can hold (its "Constraints" page). A write breaking one is refused whole with a
# ValidationException, and BatchWriteItem fails its other 24 items with it: the checks of incoming
# events (rules.py) use these so that whatever they accept, the table stores.
#: Partition key values, of the table and of every index, in UTF-8 bytes.
MAX_PARTITION_KEY_BYTES = 2048
#: Sort key values, of the table and of every index (the time index's ``time_key`` too), in UTF-8 bytes.
MAX_SORT_KEY_BYTES = 1024
#: The smallest magnitude of a non-zero number. (The largest, 9.99…E+125, is far above any value we
#: accept, and pynamodb writes a float with at most 17 of the 38 significant digits allowed.)
MIN_NUMBER_MAGNITUDE = 1e-130

#: (user_id, record_key): the primary key of an item.
ItemKey = tuple[str, str]


@dataclass(frozen=True)
class Event:
    """One interaction, validated, ready to store."""

    user_id: str
    item_id: str
    event_type: str
    event_id: str
    timestamp: datetime
    value: float | None = None
    session_id: str | None = None
    source: str | None = None
    #: When the log stored it (set by the log); decides what a model trained up to a cutoff knows.
    received_at: datetime | None = None


def new_event_id() -> str:
    """A server-side event id for events sent without one."""
    return uuid.uuid4().hex


def record_key(event_id: str) -> str:
    """The sort key of the item holding event *event_id*."""
    return EVENT_KEY_PREFIX + event_id


def event_id_of(key: str) -> str:
    """The event id inside an event's sort key (the inverse of :func:`record_key`)."""
    return key[len(EVENT_KEY_PREFIX):]


def is_event_key(key: str) -> bool:
    """Whether a sort key is an event's (not the erasure marker's)."""
    return key.startswith(EVENT_KEY_PREFIX)


def time_key(timestamp: datetime, event_id: str) -> str:
    """The time-index key of an event: its UTC time to the millisecond, then its id."""
    utc = timestamp.astimezone(timezone.utc)
    return f"{utc.strftime('%Y-%m-%dT%H:%M:%S')}.{utc.microsecond // 1000:03d}Z#{event_id}"


#: The longest user id, in UTF-8 bytes: it is the partition key of the table and of the time index as is.
MAX_USER_ID_BYTES = MAX_PARTITION_KEY_BYTES
#: The longest event id, in UTF-8 bytes: it ends both sort keys, ``record_key`` (``e#<id>``) and the
#: time index's ``time_key`` (``<instant>Z#<id>``, 25 characters before the id), so the longer prefix binds.
MAX_EVENT_ID_BYTES = MAX_SORT_KEY_BYTES - max(len(record_key("")),
                                              len(time_key(datetime(2000, 1, 1, tzinfo=timezone.utc), "")))


def time_key_instants(keys: Sequence[str]) -> np.ndarray:
    """The instants of many time keys at once, as UTC ``datetime64[ms]``."""
    return np.array([key[:_TIME_KEY_INSTANT] for key in keys], dtype="datetime64[ms]")


def parse_stored_time(value: str) -> datetime:
    """An aware datetime from a stored time attribute in DynamoDB JSON.

    pynamodb writes ``2026-01-01T00:00:00.000000+0000``; ISO-8601 with ``Z``
    or ``+00:00`` is accepted too.
    """
    if len(value) >= 5 and value[-5] in "+-" and value[-3] != ":":
        value = value[:-2] + ":" + value[-2:]
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def raw_key(item: dict[str, dict[str, str]]) -> ItemKey:
    """(user_id, record_key) of an item or key in DynamoDB JSON."""
    return item[HASH_KEY]["S"], item[RANGE_KEY]["S"]


def raw_key_of(user_id: str, key: str) -> dict[str, dict[str, str]]:
    """The DynamoDB JSON key of the item (*user_id*, *key*)."""
    return {HASH_KEY: {"S": user_id}, RANGE_KEY: {"S": key}}


class TimeIndex(LocalSecondaryIndex):
    """A user's records ordered by time (erasure marker last)."""

    class Meta:
        index_name = TIME_INDEX
        projection = AllProjection()

    user_id = UnicodeAttribute(hash_key=True)
    time_key = UnicodeAttribute(range_key=True)


class EventRecord(Model):
    """An event or a user's erasure marker (see the module docstring for the keys)."""

    class Meta:
        table_name = "events"
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    record_key = UnicodeAttribute(range_key=True)
    time_key = UnicodeAttribute()
    by_time = TimeIndex()
    event_id = UnicodeAttribute(null=True)
    item_id = UnicodeAttribute(null=True)
    event_type = UnicodeAttribute(null=True)
    timestamp = UTCDateTimeAttribute(null=True)
    value = NumberAttribute(null=True)
    session_id = UnicodeAttribute(null=True)
    source = UnicodeAttribute(null=True)
    received_at = UTCDateTimeAttribute(null=True)
    erased_at = UTCDateTimeAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    @classmethod
    def of_event(cls, event: Event, received_at: datetime, expires_at: datetime | None = None) -> "EventRecord":
        """The item storing *event*, received at *received_at*."""
        return cls(
            event.user_id,
            record_key(event.event_id),
            time_key=time_key(event.timestamp, event.event_id),
            event_id=event.event_id,
            item_id=event.item_id,
            event_type=event.event_type,
            timestamp=event.timestamp,
            value=event.value,
            session_id=event.session_id,
            source=event.source,
            received_at=received_at,
            expires_at=expires_at,
        )

    @classmethod
    def erasure_marker(cls, user_id: str, erased_at: datetime) -> "EventRecord":
        """The marker of *user_id*'s erasure: the id and the time, nothing else."""
        return cls(user_id, ERASED_KEY, time_key=ERASED_TIME_KEY, erased_at=erased_at)

    @property
    def is_erasure_marker(self) -> bool:
        return self.record_key == ERASED_KEY

    def to_event(self) -> Event:
        """The stored event as an :class:`Event`."""
        return Event(
            user_id=self.user_id, item_id=self.item_id, event_type=self.event_type, event_id=self.event_id,
            timestamp=self.timestamp, value=self.value, session_id=self.session_id, source=self.source,
            received_at=self.received_at,
        )


def event_model(
    table_name: str,
    region: str,
    host: str | None,
    *,
    connect_timeout: float = 2.0,
    read_timeout: float = 5.0,
    retries: int = 3,
) -> type[EventRecord]:
    """An :class:`EventRecord` subclass bound to one table, endpoint and timeouts.

    Parameters
    ----------
    table_name, region: the DynamoDB table.
    host: endpoint URL of a local DynamoDB, or None for AWS.
    connect_timeout, read_timeout, retries: of the underlying botocore client.
    """
    meta_attributes: dict[str, Any] = {
        "table_name": table_name,
        "region": region,
        "connect_timeout_seconds": connect_timeout,
        "read_timeout_seconds": read_timeout,
        "max_retry_attempts": retries,
    }
    if host:
        meta_attributes["host"] = host
    meta = type("Meta", (), meta_attributes)
    return type(f"EventRecord_{table_name}", (EventRecord,), {"Meta": meta})


def table_connection(model: type[EventRecord], retries: int | None = None) -> TableConnection:
    """A low-level connection to *model*'s table, for batch calls and raw scans.

    Same endpoint and timeouts as *model* (and its retries unless *retries*
    is given: callers that retry themselves pass 0); built on pynamodb's
    public :class:`TableConnection`, told the key schema so that it needs no
    DescribeTable call.
    """
    meta = model.Meta
    schema = MetaTable({
        "TableName": meta.table_name,
        "KeySchema": [{"AttributeName": HASH_KEY, "KeyType": "HASH"}, {"AttributeName": RANGE_KEY, "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": HASH_KEY, "AttributeType": "S"},
                                 {"AttributeName": RANGE_KEY, "AttributeType": "S"}],
    })
    return TableConnection(
        meta.table_name,
        region=meta.region,
        host=getattr(meta, "host", None),
        connect_timeout_seconds=meta.connect_timeout_seconds,
        read_timeout_seconds=meta.read_timeout_seconds,
        max_retry_attempts=meta.max_retry_attempts if retries is None else retries,
        meta_table=schema,
    )


def ensure_table(model: type[EventRecord]) -> bool:
    """Create the table of *model* (on-demand billing) unless it exists.

    Returns True when the table was created. TTL is enabled where the
    endpoint supports it (dynalite does not).
    """
    if model.exists():
        return False
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True, ignore_update_ttl_errors=True)
    return True
