"""The event log: stores events idempotently, reads a user's latest ones, erases a user.

The item format and key layout are in :mod:`chalicelib.eventlog.item`; the
retries of batch calls in :mod:`chalicelib.eventlog.batch_writer`.

Erasure is decided by the server's receive time: erasing a user deletes every
event received before the erasure, and events received after it are new
activity, kept whatever timestamp they carry. A write and an erasure may run
at the same moment, so each side checks after the other's first step: the
erasure writes its marker, then reads the user's events strongly consistent
and deletes them; a write stores its events, then reads the marker strongly
consistent and deletes what it stored if an erasure began after it received
them. Whichever comes second sees the other, so no event received before an
erasure survives it.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from pynamodb.exceptions import PynamoDBException

from chalicelib.deadlines import Deadline
from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.batch_writer import WRITE_BATCH, BatchWriter
from chalicelib.eventlog.item import (
    ERASED_KEY,
    Event,
    EventRecord,
    ItemKey,
    is_event_key,
    parse_stored_time,
    record_key,
    table_connection,
)

logger = logging.getLogger(__name__)

#: Told of the events each write stored, with the write's deadline (see :meth:`EventLog.on_stored`).
StoredListener = Callable[[list[Event], "Deadline | None"], Any]
#: Batches of one write sent side by side (they are independent, network-bound requests).
WRITE_THREADS = 4


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


class EventLog:
    """Stores and reads events, with retries that never lose or double-count one.

    Parameters
    ----------
    model: the bound :class:`EventRecord` subclass used for writes and erasure.
    reader: the bound subclass used for the real-time Query (short timeouts).
    batches: the retrying batch calls on the table; by default on *model*'s
        endpoint with the default retry budget.
    retention_days: when > 0, events expire that many days after their timestamp.
    """

    def __init__(
        self,
        model: type[EventRecord],
        reader: type[EventRecord] | None = None,
        *,
        batches: BatchWriter | None = None,
        retention_days: int = 0,
    ) -> None:
        self._model = model
        self._reader = reader or model
        self._batches = batches if batches is not None else BatchWriter(table_connection(model))
        self._retention = timedelta(days=retention_days) if retention_days > 0 else None
        self._listeners: list[StoredListener] = []

    def on_stored(self, listener: StoredListener) -> None:
        """Call *listener* after each :meth:`write` with the events it stored (in request order) and its deadline.

        Never with duplicates or events that could not be stored. The insight counters follow
        the log this way, for ``POST /events`` and imports alike; a listener handles its own
        failures (the events are stored whatever it does).
        """
        self._listeners.append(listener)

    # -- writing -------------------------------------------------------------

    def write(self, events: list[Event], deadline: Deadline | None = None) -> WriteReceipt:
        """Store *events*, skipping those whose (user_id, event_id) is already stored.

        Returns a receipt listing, by position in *events*, which were stored,
        which were duplicates (already stored, or repeated in this call), and
        which could not be stored once retries or the *deadline* ran out (a
        repeat of an event that could not be stored counts as not stored).
        Events of a user whose erasure began while they were being written
        are erased with the user (and count as stored: they were accepted).
        """
        receipt = WriteReceipt()
        first_position: dict[ItemKey, int] = {}
        repeats: dict[int, int] = {}  # position of a repeat -> position of its first copy
        for position, event in enumerate(events):
            key = (event.user_id, record_key(event.event_id))
            if key in first_position:
                repeats[position] = first_position[key]
            else:
                first_position[key] = position

        try:
            existing = self._batches.find_existing(list(first_position), deadline)
        except EventLogUnavailable:
            receipt.failed.extend(range(len(events)))
            return receipt
        received_at = datetime.now(timezone.utc)
        to_store: dict[ItemKey, dict[str, Any]] = {}
        for key, position in first_position.items():
            if key in existing:
                receipt.duplicates.append(position)
            else:
                to_store[key] = self._record(events[position], received_at).serialize()

        keys = list(to_store)
        batches = [{key: to_store[key] for key in keys[start:start + WRITE_BATCH]}
                   for start in range(0, len(keys), WRITE_BATCH)]
        with ThreadPoolExecutor(max_workers=min(WRITE_THREADS, len(batches) or 1)) as pool:
            unstored_per_batch = list(pool.map(lambda batch: self._batches.put(batch, deadline), batches))
        stored_keys = [key for batch, unstored in zip(batches, unstored_per_batch, strict=True)
                       for key in batch if key not in unstored]
        self._erase_if_erasure_began(stored_keys, received_at, deadline)
        for batch, unstored in zip(batches, unstored_per_batch, strict=True):
            for key in batch:
                (receipt.failed if key in unstored else receipt.stored).append(first_position[key])
        # A repeat shares the fate of its first copy: a duplicate unless that copy was not stored.
        failed = set(receipt.failed)
        for position, first in repeats.items():
            (receipt.failed if first in failed else receipt.duplicates).append(position)
        for positions in (receipt.stored, receipt.duplicates, receipt.failed):
            positions.sort()
        if receipt.stored:
            stored_events = [events[position] for position in receipt.stored]
            for listener in self._listeners:
                listener(stored_events, deadline)
        return receipt

    def _erase_if_erasure_began(self, stored: list[ItemKey], received_at: datetime,
                                deadline: Deadline | None) -> None:
        """Delete what this write stored for users whose erasure began at or after *received_at*.

        The second half of the handshake with :meth:`erase` (module docstring).
        If the markers cannot be read in time, the events stay: the erasure
        that raced with this write then still finds them, or a retried
        ``DELETE`` does.
        """
        users = sorted({user_id for user_id, _ in stored})
        if not users:
            return
        try:
            markers = self._batches.read([(user_id, ERASED_KEY) for user_id in users], ["erased_at"], deadline)
        except EventLogUnavailable:
            logger.warning("could not check %d users for an erasure racing with this write", len(users))
            return
        erased = {user_id for (user_id, _), item in markers.items()
                  if "erased_at" in item and parse_stored_time(item["erased_at"]["S"]) >= received_at}
        doomed = [key for key in stored if key[0] in erased]
        for start in range(0, len(doomed), WRITE_BATCH):
            self._batches.delete(doomed[start:start + WRITE_BATCH], deadline)
        if doomed:
            logger.info("erased %d events written while their user's erasure began", len(doomed))

    def _record(self, event: Event, received_at: datetime) -> EventRecord:
        expires_at = event.timestamp + self._retention if self._retention is not None else None
        return self._model.of_event(event, received_at, expires_at)

    # -- reading -------------------------------------------------------------

    def recent(self, user_id: str, limit: int) -> UserHistory:
        """The user's *limit* latest events (newest first) and their erasure time.

        One Query on the time index. Raises :class:`EventLogUnavailable` when
        DynamoDB cannot answer in time.
        """
        try:
            records = list(self._reader.by_time.query(user_id, scan_index_forward=False, limit=limit + 1))
        except PynamoDBException as exc:
            logger.warning("cannot read the latest events of a user: %s", exc)
            raise EventLogUnavailable("the event log did not answer in time") from exc
        erased_at = None
        events = []
        for record in records:
            if record.is_erasure_marker:
                erased_at = record.erased_at
            elif len(events) < limit:
                events.append(record.to_event())
        if erased_at is not None:
            # Events received before the erasure belong to the erased past, even while their deletion runs.
            events = [event for event in events if _received(event) > erased_at]
        return UserHistory(events=events, erased_at=erased_at)

    def erasures(self, user_ids: list[str], deadline: Deadline | None = None) -> dict[str, datetime]:
        """When each of *user_ids* that has been erased was last erased (the others are absent).

        Reads the erasure markers by key, a hundred a call: offline jobs
        (batch exports) use it to leave out users erased since a model was trained.
        """
        markers = self._batches.read([(user_id, ERASED_KEY) for user_id in user_ids], ["erased_at"], deadline)
        return {user_id: parse_stored_time(item["erased_at"]["S"]) for (user_id, _), item in markers.items()
                if "erased_at" in item}

    # -- erasure ---------------------------------------------------------------

    def erase(self, user_id: str, deadline: Deadline | None = None) -> ErasureReceipt:
        """Delete every event of *user_id* received until now, and leave a marker holding the id and time.

        The marker is written first: from then on serving ignores the user's
        earlier events, and a write racing with this erasure deletes its own
        (module docstring). Calling again is safe and finishes an interrupted
        erasure.

        Raises
        ------
        EventLogUnavailable
            When the marker could not be written or some events could not be
            deleted in time; calling again finishes the job.
        """
        erased_at = datetime.now(timezone.utc)
        try:
            self._batches.run(lambda: self._model.erasure_marker(user_id, erased_at).save(), deadline)
            records = self._batches.run(lambda: list(self._model.query(
                user_id, consistent_read=True, attributes_to_get=["record_key", "received_at"])), deadline)
        except EventLogUnavailable as exc:
            raise EventLogUnavailable("the event log did not answer in time; retry the erasure") from exc
        keys = [(user_id, record.record_key) for record in records
                if is_event_key(record.record_key) and (record.received_at is None or record.received_at <= erased_at)]
        left = sum(len(self._batches.delete(keys[start:start + WRITE_BATCH], deadline))
                   for start in range(0, len(keys), WRITE_BATCH))
        if left:
            raise EventLogUnavailable(f"{left} events of the user could not be deleted yet; retry the erasure")
        logger.info("erased %d events", len(keys))
        return ErasureReceipt(user_id=user_id, deleted_events=len(keys), erased_at=erased_at)


def _received(event: Event) -> datetime:
    """When the log received *event* (its timestamp for events stored before receive times were kept)."""
    return event.received_at if event.received_at is not None else event.timestamp
