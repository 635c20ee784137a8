"""Bulk import of interaction files into the event log, through the API's own write path.

Formats:

* ``movielens-100k``: ``u.data`` (tab-separated user, item, rating, unix time);
* ``movielens-csv``: ``ratings.csv`` (``userId,movieId,rating,timestamp`` header);
* ``csv``: a header with ``user_id,item_id`` and optionally
  ``event_type,value,timestamp,event_id`` (``event_type`` defaults to ``view``).

A MovieLens rating becomes an event of type ``rating`` whose value is the
number of stars, at the rating's time, with event id ``ml:<user>:<item>``
(MovieLens has one rating per user and item). Rows without an event id get
one derived from their content and how many identical rows came before, so
importing the same file again stores nothing twice.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Iterator

from chalicelib.errors import InvalidRequest
from chalicelib.events import Event, EventLog
from chalicelib.validation import EventRules, check_event

FORMATS = ("movielens-100k", "movielens-csv", "csv")
#: Rows validated and written together (the event log splits them into batches of 25).
CHUNK = 500
_CSV_COLUMNS = {"user_id", "item_id", "event_type", "value", "timestamp", "event_id"}


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
    return EventRules(event_types=event_types, max_age=now - datetime(1990, 1, 1, tzinfo=timezone.utc),
                      max_future=timedelta(minutes=5))


def _movielens_100k_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    with path.open(encoding="latin-1") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                yield line_number, f"expected 4 tab-separated fields, found {len(parts)}"
                continue
            yield line_number, _rating_event(*parts)


def _rating_event(user: str, item: str, rating: str, timestamp: str) -> dict | str:
    try:
        stars = float(rating)
        seconds = int(timestamp)
    except ValueError:
        return f"rating {rating!r} or timestamp {timestamp!r} is not a number"
    return {
        "user_id": user.strip(), "item_id": item.strip(), "event_type": "rating", "value": stars,
        "timestamp": seconds, "event_id": f"ml:{user.strip()}:{item.strip()}", "source": "import",
    }


def _movielens_csv_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"userId", "movieId", "rating", "timestamp"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidRequest(f"{path}: header lacks {', '.join(sorted(missing))}", "header")
        for row in reader:
            yield reader.line_num, _rating_event(row["userId"] or "", row["movieId"] or "", row["rating"] or "",
                                                 row["timestamp"] or "")


def _generic_csv_rows(path: Path) -> Iterator[tuple[int, dict | str]]:
    seen: dict[str, int] = {}
    # utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        if not {"user_id", "item_id"} <= columns:
            raise InvalidRequest(f"{path}: the header must name user_id and item_id", "header")
        unknown = columns - _CSV_COLUMNS
        if unknown:
            raise InvalidRequest(f"{path}: unknown columns {', '.join(sorted(unknown))}", "header")
        for row in reader:
            if None in row:
                yield reader.line_num, "more fields than the header names"
                continue
            raw: dict = {key: value for key, value in row.items() if value not in (None, "")}
            raw.setdefault("event_type", "view")
            raw["source"] = "import"
            problem = _convert_numbers(raw)
            if problem:
                yield reader.line_num, problem
                continue
            if "event_id" not in raw:
                content = "\x1f".join(f"{key}={row.get(key) or ''}" for key in sorted(_CSV_COLUMNS))
                occurrence = seen.get(content, 0)
                seen[content] = occurrence + 1
                digest = hashlib.sha256(f"{content}\x1e{occurrence}".encode()).hexdigest()[:32]
                raw["event_id"] = f"csv:{digest}"
            yield reader.line_num, raw


def _convert_numbers(raw: dict) -> str | None:
    """Turn CSV text into numbers in place; a problem description, or None."""
    if "value" in raw:
        try:
            raw["value"] = float(raw["value"])
        except ValueError:
            return f"value {raw['value']!r} is not a number"
    if "timestamp" in raw:
        try:
            raw["timestamp"] = float(raw["timestamp"])
        except ValueError:
            pass  # ISO-8601 text, checked with the rest of the event
    return None


_READERS: dict[str, Callable[[Path], Iterator[tuple[int, dict | str]]]] = {
    "movielens-100k": _movielens_100k_rows,
    "movielens-csv": _movielens_csv_rows,
    "csv": _generic_csv_rows,
}


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
    if file_format not in _READERS:
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

    for line_number, raw in _READERS[file_format](path):
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

