"""Adding events to the insight counters, one update per counter item: at ingest or from the stream.

At ingest (``INSIGHTS_COUNTERS=ingest``) the event log calls :meth:`CounterWriter.record` with the
events it has just stored (never duplicates or events it could not store); from the events table's
stream (``stream``, :mod:`chalicelib.insights.stream`) a Lambda batch's inserted events go through
:meth:`CounterWriter.record_batch`. They are tallied in memory per counter item
(:func:`chalicelib.insights.counters.tally`), then each touched item gets

1. one UpdateItem that ADDs its counts (atomic, no read) and answers the item as it now is, sketch
   included (``ALL_NEW`` costs no read capacity);
2. only when a distinct-user register rose: one UpdateItem replacing the sketch under the version it
   was read at; if another writer got there first, the item is read again (strongly consistent) and
   the merge retried. Once a bucket has seen its regular users this second write is rare.

Updates go four at a time, retried like the event log's batch calls (throttling, timeouts: tenacity),
within the request's or the stream batch's deadline. At ingest the counters are best effort: an event
is accepted once stored in the log, and a counter update that still fails is logged and counted
(*on_failure*), never an error of the request. Consistency (README, Insights): a retried ADD whose
first answer was lost counts twice, and at ingest two copies of one new event racing past the log's
duplicate check are both counted; drift is repaired by ``scripts/rebuild_insights.py``.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any, Callable

from pynamodb.attributes import BinaryAttribute, NumberAttribute
from pynamodb.connection import TableConnection
from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.operand import Path

from chalicelib.deadlines import Deadline
from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.batch_writer import BatchWriter, error_code
from chalicelib.eventlog.item import Event
from chalicelib.insights import sketch
from chalicelib.insights.counters import (
    HORIZON,
    CategoriesOf,
    CounterKey,
    Tally,
    binary_value,
    bucket_end,
    tally,
)

logger = logging.getLogger(__name__)

#: Counter items updated side by side.
UPDATE_THREADS = 4
#: Reads and merges of one sketch before giving up on it (other writers kept changing it).
SKETCH_ATTEMPTS = 3

_SKETCH = BinaryAttribute(attr_name="sketch", legacy_encoding=False)
_VERSION = NumberAttribute(attr_name="sketch_version")
_EXPIRES = NumberAttribute(attr_name="expires_at")


class CounterWriter:
    """Adds stored events to the insight counters.

    Parameters
    ----------
    table: the counters table's connection (no retries of its own).
    calls: runs each call with retries, backoff and the deadline (a :class:`BatchWriter` on *table*).
    categories_of: item ids -> their catalog categories.
    on_failure: called with the number of counter items left un-updated by a write (a metric).
    clock: now, for the horizon (tests pass a fixed one).
    """

    def __init__(self, table: TableConnection, calls: BatchWriter, categories_of: CategoriesOf,
                 on_failure: Callable[[int], None] = lambda n: None,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self._table = table
        self._calls = calls
        self._categories_of = categories_of
        self._on_failure = on_failure
        self._clock = clock

    def record(self, events: list[Event], deadline: Deadline | None = None) -> int:
        """Add *events* (just stored) to their counter items; returns how many items could not be updated.

        Failures are logged and counted (*on_failure*), never raised: at ingest the events are stored
        whatever the counters do.
        """
        touched, failed = self.record_batch(events, deadline)
        if failed:
            logger.error("%d of %d insight counter items not updated for %d stored events",
                         failed, touched, len(events))
            self._on_failure(failed)
        return failed

    def record_batch(self, events: list[Event], deadline: Deadline | None = None) -> tuple[int, int]:
        """Add *events* to their counter items, one update per item whatever the number of its events.

        Returns (counter items touched, of which the counts could not be added); the caller decides what
        a failure means (ingest logs it, the stream consumer has its batch delivered again). An item
        whose counts went in but whose distinct-user sketch lost every race to other writers is not a
        failure: it is logged, and its distinct users miss these events' users.
        """
        tallies = tally(events, self._categories_of, self._clock())
        if not tallies:
            return 0, 0
        with ThreadPoolExecutor(max_workers=min(UPDATE_THREADS, len(tallies))) as pool:
            done = list(pool.map(lambda entry: self._update(entry[0], entry[1], deadline), tallies.items()))
        return len(tallies), done.count(False)

    def _update(self, key: CounterKey, entry: Tally, deadline: Deadline | None) -> bool:
        bucket, dimension = key
        expires = int((bucket_end(bucket) + HORIZON).timestamp())
        actions = [Path(NumberAttribute(attr_name=name)).add(count) for name, count in sorted(entry.counts.items())]
        actions.append(Path(_EXPIRES).set(expires))
        try:
            answer = self._calls.run(lambda: self._table.update_item(bucket, dimension, actions=actions,
                                                                     return_values="ALL_NEW"), deadline)
            item = answer.get("Attributes", {})
            for _ in range(SKETCH_ATTEMPTS):
                if self._merge_users(bucket, dimension, item, entry.users, deadline):
                    return True
                item = self._calls.run(lambda: self._table.get_item(bucket, dimension, consistent_read=True,
                                                                    attributes_to_get=["sketch", "sketch_version"]),
                                       deadline).get("Item", {})
        except EventLogUnavailable:
            return False
        # The counts are in: failing the item would have the stream consumer's batch delivered again
        # and every count of it added twice, for an approximate figure that misses a few users.
        logger.warning("distinct users of counter item %s %s not updated: its sketch kept changing under %d "
                       "attempts; its counts were added", bucket, dimension, SKETCH_ATTEMPTS)
        return True

    def _merge_users(self, bucket: str, dimension: str, item: dict[str, Any], users: set[int],
                     deadline: Deadline | None) -> bool:
        """Write the item's sketch with *users* added, unless none changed it; False when another writer won."""
        stored = item.get("sketch", {}).get("B")
        registers = sketch.decode(binary_value(stored))
        if not sketch.add(registers, users):
            return True
        version = int(item.get("sketch_version", {}).get("N", "0"))
        condition = Path(_VERSION) == version if "sketch_version" in item else Path(_VERSION).does_not_exist()
        actions = [Path(_SKETCH).set(sketch.encode(registers)), Path(_VERSION).set(version + 1)]
        try:
            self._calls.run(lambda: self._table.update_item(bucket, dimension, actions=actions, condition=condition),
                            deadline)
        except EventLogUnavailable as exc:
            cause = exc.__cause__
            if isinstance(cause, PynamoDBException) and error_code(cause) == "ConditionalCheckFailedException":
                return False
            raise
        return True
