"""Reading the whole event log with a (parallel) DynamoDB Scan, page by page, into coded arrays."""

from __future__ import annotations

import queue
import threading
from datetime import datetime, timezone
from typing import Any, Callable, Iterator

from pynamodb.connection import TableConnection

from chalicelib.eventlog.item import EventRecord, table_connection
from chalicelib.training.event_arrays import EventCollector, EventLogSnapshot

_SCANNED_ATTRIBUTES = ["user_id", "record_key", "time_key", "item_id", "event_type", "erased_at", "received_at", "value"]


def _scan_segment(table: TableConnection, segment: int, total: int) -> Iterator[list[dict[str, Any]]]:
    start_key = None
    while True:
        page = table.scan(
            attributes_to_get=_SCANNED_ATTRIBUTES, exclusive_start_key=start_key,
            segment=segment if total > 1 else None, total_segments=total if total > 1 else None,
        )
        yield page.get("Items", [])
        start_key = page.get("LastEvaluatedKey")
        if not start_key:
            return


def read_event_log(
    model: type[EventRecord], progress: Callable[[int], None] = lambda n: None, segments: int = 1
) -> EventLogSnapshot:
    """Scan the whole table, following every page of every segment, into a snapshot.

    With ``segments > 1`` the Scan runs as that many parallel segments (threads);
    pages are merged by one consumer, so memory holds only the coded arrays.
    """
    scanned_at = datetime.now(timezone.utc)
    # The raw table connection: no Model object per item, which matters at millions of events.
    table = table_connection(model)
    collector = EventCollector()
    pages: queue.Queue = queue.Queue(maxsize=segments * 4)
    failures: list[BaseException] = []

    def produce(segment: int) -> None:
        try:
            for page in _scan_segment(table, segment, segments):
                pages.put(page)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            failures.append(exc)
        finally:
            pages.put(None)

    threads = [threading.Thread(target=produce, args=(segment,), daemon=True) for segment in range(segments)]
    for thread in threads:
        thread.start()
    finished = 0
    while finished < segments:
        page = pages.get()
        if page is None:
            finished += 1
            continue
        progress(collector.add_raw_items(page))
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return collector.finish(scanned_at)
