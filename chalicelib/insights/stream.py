"""Keeping the insight counters from the events table's stream, off the request path (``INSIGHTS_COUNTERS=stream``).

The events table streams ``NEW_IMAGE`` records to a Lambda function (``chalicelib/api/streams.py``),
which hands each batch here. Only ``INSERT`` records of event items count: a new event is an INSERT
exactly once, while a re-put of a stored event id (two copies racing past the log's duplicate
check) is a ``MODIFY``, so duplicates are never counted; ``REMOVE`` records (erasure, TTL expiry)
and the erasure marker's INSERT are skipped. The images are read by the event item's own pynamodb
model (:meth:`EventRecord.from_raw_data`), never parsed here.

The whole batch is tallied at once by the same :class:`~chalicelib.insights.counter_writer.CounterWriter`
as ingest, so a counter item touched by many events of the batch gets one update: the write-cost
win over ingest, which pays per request. When some counter item could not be updated the batch
fails (:class:`~chalicelib.errors.InsightCountersNotUpdated`) and Lambda delivers it again: the
items that were updated the first time are then counted twice (README, Insights: consistency).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from chalicelib.deadlines import Deadline
from chalicelib.errors import InsightCountersNotUpdated
from chalicelib.eventlog.item import Event, EventRecord, is_event_key
from chalicelib.insights.counter_writer import CounterWriter

logger = logging.getLogger(__name__)

#: The stream record of a new item (``MODIFY``: an item overwritten; ``REMOVE``: deleted or expired).
INSERT = "INSERT"


@dataclass(frozen=True)
class StreamBatch:
    """What one stream batch did: records read, events counted, counter items updated."""

    records: int
    events: int
    counter_items: int

    def as_json(self) -> dict[str, int]:
        """The summary the Lambda function returns (and logs)."""
        return {"records": self.records, "events": self.events, "counter_items": self.counter_items}


def inserted_events(records: Iterable[Mapping[str, Any]]) -> list[Event]:
    """The events of the ``INSERT`` records among *records* (Lambda's DynamoDB stream records), in order.

    Each record is a dict as Lambda delivers it: ``eventName`` and ``dynamodb.NewImage`` in DynamoDB
    JSON. ``MODIFY`` and ``REMOVE`` records and the erasure markers are left out.
    """
    events = []
    for record in records:
        if record.get("eventName") != INSERT:
            continue
        image = record.get("dynamodb", {}).get("NewImage")
        if not image or not is_event_key(image.get("record_key", {}).get("S", "")):
            continue  # the erasure marker (or a stream without images: the table is set up wrongly)
        events.append(EventRecord.from_raw_data(image).to_event())
    return events


def count_stream_batch(records: list[Mapping[str, Any]], writer: CounterWriter,
                       deadline: Deadline | None = None) -> StreamBatch:
    """Add the events inserted by *records* to the insight counters, one update per touched counter item.

    Raises
    ------
    InsightCountersNotUpdated
        When some counter item was not updated within the retries and *deadline*: the batch must
        be delivered again (Lambda does, on the raised error).
    """
    events = inserted_events(records)
    touched, failed = writer.record_batch(events, deadline)
    if failed:
        raise InsightCountersNotUpdated(f"{failed} of {touched} insight counter items not updated for "
                                        f"{len(events)} events of a stream batch; the batch will be retried")
    logger.info("stream batch: %d records, %d events counted, %d counter items updated",
                len(records), len(events), touched)
    return StreamBatch(len(records), len(events), touched)
