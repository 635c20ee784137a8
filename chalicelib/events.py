"""The event log: one user interaction per DynamoDB item, written and read through pynamodb.

This module is the single definition of the event item, written by the API
and the importer and read by real-time serving and training.

Layout of the table (one partition per user):

* ``user_id`` (partition key) and ``record_key`` (sort key): ``e#<event_id>``
  for an event, ``erased`` for the erasure marker. The key is derived from
  the event id alone, so storing the same event twice writes the same item:
  idempotency holds with plain ``BatchWriteItem`` (which cannot be
  conditional), whatever the arrival time of a retry.
* local secondary index ``by_time`` on ``time_key`` =
  ``<UTC timestamp, ms>#<event_id>``: a user's events in time order, so
  "the 50 latest" is one Query. The marker's ``~erased`` sorts after every
  timestamp, so that same Query returns it first.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.exceptions import PynamoDBException
from pynamodb.indexes import AllProjection, LocalSecondaryIndex
from pynamodb.models import Model
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from chalicelib.config import Settings
from chalicelib.errors import EventLogUnavailable

logger = logging.getLogger(__name__)

EVENT_KEY_PREFIX = "e#"
ERASED_KEY = "erased"
ERASED_TIME_KEY = "~erased"
#: DynamoDB limits per BatchWriteItem / BatchGetItem request.
WRITE_BATCH = 25
READ_BATCH = 100
WRITE_THREADS = 4
_THROTTLING_CODES = {
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
    "InternalServerError",
    "ServiceUnavailable",
}
_CONTEXT_FIELDS = ("session_id", "source")


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


def _time_key(timestamp: datetime, event_id: str) -> str:
    utc = timestamp.astimezone(timezone.utc)
    return f"{utc.strftime('%Y-%m-%dT%H:%M:%S')}.{utc.microsecond // 1000:03d}Z#{event_id}"


class TimeIndex(LocalSecondaryIndex):
    """A user's records ordered by time (erasure marker last)."""

    class Meta:
        index_name = "by_time"
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


def ensure_table(model: type[EventRecord]) -> bool:
    """Create the table of *model* (on-demand billing) unless it exists.

    Returns True when the table was created. TTL is enabled where the
    endpoint supports it (dynalite does not).
    """
    if model.exists():
        return False
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True, ignore_update_ttl_errors=True)
    return True


@dataclass
class WriteReceipt:
    """What happened to each event of a write, by request position."""

    stored: list[int] = field(default_factory=list)
    duplicates: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class UserHistory:
    """A user's latest events (newest first) and when the user was erased, if ever."""

    events: list[Event]
    erased_at: datetime | None


@dataclass(frozen=True)
class ErasureReceipt:
    """Proof of an erasure: how many events were deleted and when."""

    user_id: str
    deleted_events: int
    erased_at: datetime


class _Unfinished(Exception):
    """Some requests of a batch call are still pending (retry them)."""


class EventLog:
    """Stores and reads events, with retries that never lose or double-count one.

    Parameters
    ----------
    model: the bound :class:`EventRecord` subclass used for writes and erasure.
    reader: the bound subclass used for the real-time Query (short timeouts).
    table: the pynamodb table connection used for batch calls; defaults to
        ``model``'s. Tests pass a wrapper that injects failures.
    attempts, retry_base_seconds: retry budget of a batch call, with
        exponential backoff and full jitter.
    retention_days: when > 0, events expire that many days after their timestamp.
    sleep: the pause between attempts (tests pass a no-op).
    """

    def __init__(
        self,
        model: type[EventRecord],
        reader: type[EventRecord] | None = None,
        *,
        table: Any = None,
        attempts: int = 8,
        retry_base_seconds: float = 0.05,
        retention_days: int = 0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._model = model
        self._reader = reader or model
        self._table = table if table is not None else model._get_connection()
        self._attempts = attempts
        self._retry_base = retry_base_seconds
        self._retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._sleep = sleep

    # -- writing -------------------------------------------------------------

    def _record(self, event: Event, received_at: datetime) -> EventRecord:
        record = self._model(
            event.user_id,
            EVENT_KEY_PREFIX + event.event_id,
            time_key=_time_key(event.timestamp, event.event_id),
            event_id=event.event_id,
            item_id=event.item_id,
            event_type=event.event_type,
            timestamp=event.timestamp,
            value=event.value,
            session_id=event.session_id,
            source=event.source,
            received_at=received_at,
        )
        if self._retention is not None:
            record.expires_at = event.timestamp + self._retention
        return record

    def write(self, events: list[Event]) -> WriteReceipt:
        """Store *events*, skipping those whose (user_id, event_id) is already stored.

        Returns a receipt listing, by position in *events*, which were stored,
        which were duplicates (already stored, or repeated in this call), and
        which could not be stored once retries ran out (a repeat of an event
        that could not be stored counts as not stored).
        """
        receipt = WriteReceipt()
        first_position: dict[tuple[str, str], int] = {}
        repeats: dict[int, int] = {}  # position of a repeat -> position of its first copy
        for position, event in enumerate(events):
            key = (event.user_id, event.event_id)
            if key in first_position:
                repeats[position] = first_position[key]
            else:
                first_position[key] = position

        try:
            existing = self._existing_keys(list(first_position))
        except EventLogUnavailable:
            receipt.failed.extend(range(len(events)))
            return receipt
        received_at = datetime.now(timezone.utc)
        to_store: dict[tuple[str, str], dict[str, Any]] = {}
        for key, position in first_position.items():
            if key in existing:
                receipt.duplicates.append(position)
            else:
                to_store[key] = self._record(events[position], received_at).serialize()

        keys = list(to_store)
        batches = [{(user, EVENT_KEY_PREFIX + event_id): to_store[(user, event_id)]
                    for user, event_id in keys[start:start + WRITE_BATCH]}
                   for start in range(0, len(keys), WRITE_BATCH)]
        # Batches are independent requests: send them side by side (network-bound).
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(batches) or 1)) as pool:
            unstored_per_batch = list(pool.map(lambda batch: self._send_batch(batch, "put"), batches))
        for batch, unstored in zip(batches, unstored_per_batch, strict=True):
            for user, record_key in batch:
                key = (user, record_key[len(EVENT_KEY_PREFIX):])
                (receipt.failed if (user, record_key) in unstored else receipt.stored).append(first_position[key])
        # A repeat shares the fate of its first copy: a duplicate unless that copy was not stored.
        failed = set(receipt.failed)
        for position, first in repeats.items():
            (receipt.failed if first in failed else receipt.duplicates).append(position)
        for positions in (receipt.stored, receipt.duplicates, receipt.failed):
            positions.sort()
        return receipt

    def _retry(self, attempt: Callable[[], None]) -> None:
        """Run *attempt* until it stops raising _Unfinished, with exponential backoff and full jitter.

        Raises RetryError when the attempts run out; other errors pass through at once.
        """
        for retry_state in Retrying(
            stop=stop_after_attempt(self._attempts),
            wait=wait_random_exponential(multiplier=self._retry_base, max=max(self._retry_base * 64, 1.0)),
            retry=retry_if_exception_type(_Unfinished),
            sleep=self._sleep,
            reraise=False,
        ):
            with retry_state:
                attempt()

    def _call(self, operation: Callable[[], dict]) -> dict | None:
        """Run one batch call; None when DynamoDB throttled it (retry the whole call)."""
        try:
            return operation()
        except PynamoDBException as exc:
            if exc.cause_response_code in _THROTTLING_CODES or exc.cause_response_code is None:
                logger.warning("DynamoDB batch call failed, will retry: %s", exc)
                return None
            raise

    def _send_batch(self, pending: dict[tuple[str, str], dict[str, Any]], kind: str) -> set[tuple[str, str]]:
        """One BatchWriteItem of up to 25 puts or deletes (*kind* ``put``/``delete``), keyed by
        (user_id, record_key); retries what comes back unprocessed or throttled and returns the
        keys still not written when the attempts run out."""
        pending = dict(pending)
        table_name = self._model.Meta.table_name
        request_name, payload_name = ("PutRequest", "Item") if kind == "put" else ("DeleteRequest", "Key")

        def attempt() -> None:
            requests = list(pending.values())
            response = self._call(lambda: self._table.batch_write_item(
                **({"put_items": requests} if kind == "put" else {"delete_items": requests})
            ))
            if response is not None:
                unprocessed = response.get("UnprocessedItems", {}).get(table_name, [])
                left = {_raw_key(request[request_name][payload_name]) for request in unprocessed}
                for key in list(pending):
                    if key not in left:
                        del pending[key]
            if pending:
                raise _Unfinished(f"{len(pending)} {kind} requests unprocessed")

        try:
            self._retry(attempt)
        except (RetryError, PynamoDBException) as exc:
            logger.error("%d %s requests not written after retries: %s", len(pending), kind, exc)
        return set(pending)

    def _existing_keys(self, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which (user_id, event_id) pairs are already stored (BatchGetItem, retried)."""
        found: set[tuple[str, str]] = set()
        table_name = self._model.Meta.table_name
        for start in range(0, len(keys), READ_BATCH):
            pending = [
                {"user_id": {"S": user_id}, "record_key": {"S": EVENT_KEY_PREFIX + event_id}}
                for user_id, event_id in keys[start:start + READ_BATCH]
            ]

            def attempt() -> None:
                nonlocal pending
                # Strongly consistent: a resend right after a write must see it.
                response = self._call(lambda: self._table.batch_get_item(
                    pending, consistent_read=True, attributes_to_get=["user_id", "record_key"]
                ))
                if response is not None:
                    for item in response.get("Responses", {}).get(table_name, []):
                        found.add(_item_key(item))
                    pending = response.get("UnprocessedKeys", {}).get(table_name, {}).get("Keys", [])
                if pending:
                    raise _Unfinished(f"{len(pending)} keys unprocessed")

            try:
                self._retry(attempt)
            except (RetryError, PynamoDBException) as exc:
                raise EventLogUnavailable(f"cannot check for duplicate events: {exc}") from exc
        return found

    # -- reading -------------------------------------------------------------

    def recent(self, user_id: str, limit: int) -> UserHistory:
        """The user's *limit* latest events (newest first) and their erasure time.

        One Query on the time index. Raises :class:`EventLogUnavailable` when
        DynamoDB cannot answer in time.
        """
        try:
            records = list(self._reader.by_time.query(user_id, scan_index_forward=False, limit=limit + 1))
        except PynamoDBException as exc:
            raise EventLogUnavailable(f"cannot read events of the user: {exc}") from exc
        erased_at = None
        events = []
        for record in records:
            if record.is_erasure_marker:
                erased_at = record.erased_at
            elif len(events) < limit:
                events.append(record.to_event())
        if erased_at is not None:
            # Events that slipped in while the erasure ran belong to the erased past.
            events = [event for event in events if event.timestamp > erased_at]
        return UserHistory(events=events, erased_at=erased_at)

    # -- erasure ---------------------------------------------------------------

    def erase(self, user_id: str) -> ErasureReceipt:
        """Delete every event of *user_id* and leave a marker holding only the id and time.

        The marker is written first: from then on serving treats the user as
        unknown to the model, even before the deletion finishes.

        Raises
        ------
        EventLogUnavailable
            When some events could not be deleted; calling again finishes the job.
        """
        erased_at = datetime.now(timezone.utc)
        try:
            self._model(user_id, ERASED_KEY, time_key=ERASED_TIME_KEY, erased_at=erased_at).save()
            keys = [
                record.record_key
                for record in self._model.query(user_id, attributes_to_get=["record_key"])
                if record.record_key != ERASED_KEY
            ]
        except PynamoDBException as exc:
            raise EventLogUnavailable(f"cannot erase user {user_id!r}: {exc}") from exc
        left = 0
        for start in range(0, len(keys), WRITE_BATCH):
            batch = {(user_id, key): {"user_id": {"S": user_id}, "record_key": {"S": key}}
                     for key in keys[start:start + WRITE_BATCH]}
            left += len(self._send_batch(batch, "delete"))
        if left:
            raise EventLogUnavailable(f"{left} events of user {user_id!r} could not be deleted yet; retry the erasure")
        logger.info("erased %d events", len(keys))
        return ErasureReceipt(user_id=user_id, deleted_events=len(keys), erased_at=erased_at)


def event_log_for(settings: Settings) -> EventLog:
    """The event log described by *settings*; its real-time reader has short timeouts and no retries."""
    writer = event_model(settings.events_table, settings.region, settings.dynamodb_endpoint_url)
    reader = event_model(
        settings.events_table, settings.region, settings.dynamodb_endpoint_url,
        connect_timeout=settings.realtime_timeout_seconds, read_timeout=settings.realtime_timeout_seconds,
        retries=0,
    )
    return EventLog(
        writer, reader, attempts=settings.event_write_attempts, retry_base_seconds=settings.event_retry_base_seconds,
        retention_days=settings.event_retention_days,
    )


def _raw_key(key: dict[str, dict[str, str]]) -> tuple[str, str]:
    return key["user_id"]["S"], key["record_key"]["S"]


def _item_key(item: dict[str, dict[str, str]]) -> tuple[str, str]:
    """(user_id, event_id) of a serialised event item."""
    user_id, record_key = _raw_key(item)
    return user_id, record_key[len(EVENT_KEY_PREFIX):]
