"""Readers of the interaction files the importer and training accept.

Each reader yields ``(line_number, row)`` where *row* is a raw event (a dict
with the fields of ``POST /events``) or a string saying why the line is
malformed; validation happens later, with the API's rules.

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
from pathlib import Path
from typing import Callable, Iterator, TextIO

from chalicelib.errors import InvalidRequest

#: A raw event, or why its line could not become one.
Row = dict | str
_CSV_COLUMNS = {"user_id", "item_id", "event_type", "value", "timestamp", "event_id"}


def count_lines(path: Path) -> int:
    """Lines in *path* (the total of a progress bar)."""
    with path.open("rb") as handle:
        return sum(1 for _ in handle)


def movielens_100k_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """Ratings of a MovieLens-100k ``u.data`` file; blank lines are skipped."""
    with path.open(encoding="latin-1") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                yield line_number, f"expected 4 tab-separated fields, found {len(parts)}"
                continue
            yield line_number, _rating_event(*parts)


def _rating_event(user: str, item: str, rating: str, timestamp: str) -> Row:
    try:
        stars = float(rating)
        seconds = int(timestamp)
    except ValueError:
        return f"rating {rating!r} or timestamp {timestamp!r} is not a number"
    return {
        "user_id": user.strip(), "item_id": item.strip(), "event_type": "rating", "value": stars,
        "timestamp": seconds, "event_id": f"ml:{user.strip()}:{item.strip()}", "source": "import",
    }


def movielens_csv_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """Ratings of a MovieLens ``ratings.csv`` file.

    Raises
    ------
    InvalidRequest
        When the header lacks one of the MovieLens columns.
    """
    with _open_csv(path) as handle:
        reader = csv.DictReader(handle)
        missing = {"userId", "movieId", "rating", "timestamp"} - set(reader.fieldnames or ())
        if missing:
            raise InvalidRequest(f"{path}: header lacks {', '.join(sorted(missing))}", "header")
        for row in reader:
            yield reader.line_num, _rating_event(row["userId"] or "", row["movieId"] or "", row["rating"] or "",
                                                 row["timestamp"] or "")


def generic_csv_rows(path: Path) -> Iterator[tuple[int, Row]]:
    """Events of a CSV file with a ``user_id,item_id[,event_type,value,timestamp,event_id]`` header.

    Raises
    ------
    InvalidRequest
        When the header lacks ``user_id`` or ``item_id`` or names other columns.
    """
    seen: dict[str, int] = {}
    with _open_csv(path) as handle:
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
                key = f"{content}\x1e{occurrence}".encode(errors="surrogateescape")  # the file's own bytes
                digest = hashlib.sha256(key).hexdigest()[:32]
                raw["event_id"] = f"csv:{digest}"
            yield reader.line_num, raw


def _open_csv(path: Path) -> TextIO:
    """*path* as text for the csv module.

    utf-8-sig: spreadsheet programs often start CSV files with a byte-order mark.
    surrogateescape: bytes that are not UTF-8 become lone surrogates instead of
    ending the import with a UnicodeDecodeError, so the rules reject just their
    row (no id may hold a surrogate) and the rest of the file is read.
    """
    return path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")


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


#: Format name -> reader.
READERS: dict[str, Callable[[Path], Iterator[tuple[int, Row]]]] = {
    "movielens-100k": movielens_100k_rows,
    "movielens-csv": movielens_csv_rows,
    "csv": generic_csv_rows,
}
FORMATS = tuple(READERS)
