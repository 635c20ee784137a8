"""Bulk import of interaction files into the event log, through the API's own write path.

The file formats are read by :mod:`chalicelib.eventlog.formats`; every row is
validated with the rules of ``POST /events`` (any time since 1990) and the
valid ones are stored in chunks, so re-running an import stores nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

from chalicelib.errors import InvalidRequest
from chalicelib.eventlog.formats import FORMATS, READERS
from chalicelib.eventlog.item import Event
from chalicelib.eventlog.log import EventLog
from chalicelib.eventlog.rules import EARLIEST_EVENT_TIME, EventRules, check_event

#: Rows validated and written together (the event log splits them into batches of 25).
CHUNK = 500


@dataclass
class ImportSummary:
    """Counts of an import and the reasons rows were rejected."""

    read: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[tuple[int, str]] = field(default_factory=list)
    not_stored: int = 0


class ImportAborted(Exception):
    """A malformed row stopped a strict import."""


def import_rules(event_types: frozenset[str], now: datetime) -> EventRules:
    """Rules for historic data: any time since 1990, nothing in the future."""
    return EventRules(event_types=event_types, max_age=now - EARLIEST_EVENT_TIME,
                      max_future=timedelta(minutes=5))


def import_file(
    path: Path,
    file_format: str,
    event_log: EventLog,
    event_types: frozenset[str],
    *,
    strict: bool = False,
    progress: Callable[[int], None] = lambda rows: None,
    now: datetime | None = None,
) -> ImportSummary:
    """Validate every row of *path* and store the valid ones in chunks of :data:`CHUNK`.

    Parameters
    ----------
    file_format: one of :data:`FORMATS`.
    event_types: the configured event types (others are rejected).
    strict: stop at the first malformed row (raising :class:`ImportAborted`)
        instead of reporting it and going on.
    progress: called with the number of rows handled since the last call.

    Returns the counts and, for each rejected row, its line number and reason.
    """
    if file_format not in READERS:
        raise InvalidRequest(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}", "format")
    reference_time = now or datetime.now(timezone.utc)
    rules = import_rules(event_types, reference_time)
    summary = ImportSummary()
    chunk: list[Event] = []

    def flush() -> None:
        receipt = event_log.write(chunk)
        summary.stored += len(receipt.stored)
        summary.duplicates += len(receipt.duplicates)
        summary.not_stored += len(receipt.failed)
        progress(len(chunk))
        chunk.clear()

    for line_number, raw in READERS[file_format](path):
        summary.read += 1
        try:
            if isinstance(raw, str):
                raise InvalidRequest(raw)
            chunk.append(check_event(raw, rules, reference_time, f"line {line_number}"))
        except InvalidRequest as exc:
            message = str(exc) if str(exc).startswith("line ") else f"line {line_number}: {exc}"
            if strict:
                raise ImportAborted(message) from None
            summary.rejected.append((line_number, message))
            progress(1)
            continue
        if len(chunk) == CHUNK:
            flush()
    if chunk:
        flush()
    return summary

