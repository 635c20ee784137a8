"""Readers of the catalog files the bulk import accepts, and the import itself.

Each reader yields ``(line_number, row)`` where *row* is a raw item (a dict
shaped like the body of ``PUT /items/{item_id}``) or a string saying why the
line could not become one; every raw item is then validated with the API's
own rules (:func:`check_catalog_item`), so the import stores exactly what the
API would.

Formats:

* ``movielens-100k``: ``u.item`` (pipe-separated, Latin-1: movie id, title,
  release date, video release date, IMDb URL, one 0/1 flag per genre) with the
  ``u.genre`` beside it naming the flags. The title is stripped; the IMDb URL
  becomes ``url`` when it is an absolute http(s) URL; the flagged genres but
  ``unknown`` become ``categories``; ``attributes`` get ``release_date`` (text)
  when given and ``year`` (a number) when the title ends with ``(YYYY)``.
* ``csv``: UTF-8 with a header naming ``item_id,title`` and optionally
  ``url,image_url,categories,price,currency,available,blocked``; categories
  are separated by ``|``, ``price`` needs ``currency``, ``available`` and
  ``blocked`` are ``true``/``false``/``1``/``0``. Any other column becomes a
  text attribute of that name. Cells are stripped; an empty cell is absent.
* ``jsonl``: one JSON object per line, exactly as the API takes an item.

A row that breaks a rule is counted as rejected with its line number and the
reason, and the rest of the file goes on; only a file that cannot be read at
all (missing, or a header or ``u.genre`` that makes no sense) stops the import.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, TextIO

from chalicelib.catalog.item import CatalogItem
from chalicelib.catalog.rules import check_catalog_item, check_url
from chalicelib.catalog.store import Catalog
from chalicelib.errors import InvalidRequest

#: A raw item, or why its line could not become one.
Row = dict[str, Any] | str
#: Items validated and upserted together (``Catalog.put`` splits them into BatchWriteItem calls of 25).
CHUNK = 100
#: Rejection messages an import keeps (the count covers them all).
KEPT_REJECTIONS = 20

_YEAR_AT_END = re.compile(r"\((\d{4})\)$")
_UNKNOWN_GENRE = "unknown"
_CSV_FIELDS = ("item_id", "title", "url", "image_url", "categories", "price", "currency", "available", "blocked")
_BOOLEANS = {"true": True, "1": True, "false": False, "0": False}


# --- MovieLens-100k ---------------------------------------------------------------------------------


def movielens_100k_items(path: Path) -> Iterator[tuple[int, Row]]:
    """Movies of a MovieLens-100k ``u.item`` file, with genre names from the ``u.genre`` beside it.

    Blank lines are skipped.

    Raises
    ------
    InvalidRequest
        When ``u.genre`` is malformed (``OSError`` when it or *path* cannot be read).
    """
    genres = read_movielens_genres(path.with_name("u.genre"))
    with path.open(encoding="latin-1", newline="") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            yield line_number, _movie(line.rstrip("\r\n").split("|"), genres)


def read_movielens_genres(path: Path) -> list[str]:
    """Genre names of a MovieLens ``u.genre`` file (``name|index`` lines), in flag order.

    Raises
    ------
    InvalidRequest
        When an index is not a number or the indexes are not 0, 1, 2, ... once each.
    """
    by_index: dict[int, str] = {}
    with path.open(encoding="latin-1") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            name, _, index = line.strip().rpartition("|")
            if not name or not index.isdigit() or int(index) in by_index:
                raise InvalidRequest(f"{path} line {line_number}: expected 'genre|index' with a new index, "
                                     f"got {line.strip()!r}", "u.genre")
            by_index[int(index)] = name.strip()
    if sorted(by_index) != list(range(len(by_index))) or not by_index:
        raise InvalidRequest(f"{path}: genre indexes must run 0, 1, 2, ... without gaps", "u.genre")
    return [by_index[index] for index in range(len(by_index))]


def _movie(fields: list[str], genres: list[str]) -> Row:
    expected = 5 + len(genres)
    if len(fields) != expected:
        return f"expected {expected} '|'-separated fields (5 + one flag per genre), found {len(fields)}"
    movie_id, title, release_date, _video_release_date, imdb_url = (value.strip() for value in fields[:5])
    flags = [flag.strip() for flag in fields[5:]]
    if any(flag not in ("0", "1") for flag in flags):
        return "genre flags must be 0 or 1"
    raw: dict[str, Any] = {
        "item_id": movie_id,
        "title": title,
        "categories": [name for name, flag in zip(genres, flags) if flag == "1" and name != _UNKNOWN_GENRE],
    }
    try:
        raw["url"] = check_url(imdb_url, "url")
    except InvalidRequest:
        pass  # no usable link: the item simply has none
    attributes: dict[str, Any] = {}
    if release_date:
        attributes["release_date"] = release_date
    year = _YEAR_AT_END.search(title)
    if year:
        attributes["year"] = int(year.group(1))
    if attributes:
        raw["attributes"] = attributes
    return raw


# --- CSV ------------------------------------------------------------------------------------------


def csv_items(path: Path) -> Iterator[tuple[int, Row]]:
    """Items of a CSV file with an ``item_id,title[,...]`` header (see the module's docstring).

    Raises
    ------
    InvalidRequest
        When the header lacks ``item_id`` or ``title``, repeats a column, or has
        extra columns that cannot be attribute names.
    """
    with _open_text(path) as handle:
        reader = csv.DictReader(handle)
        columns = [column.strip() for column in reader.fieldnames or ()]
        reader.fieldnames = columns
        _check_csv_header(path, columns)
        extra = [column for column in columns if column not in _CSV_FIELDS]
        for row in reader:
            if None in row:
                yield reader.line_num, "more fields than the header names"
                continue
            cells = {column: value.strip() for column, value in row.items() if value and value.strip()}
            yield reader.line_num, _csv_item(cells, extra)


def _check_csv_header(path: Path, columns: list[str]) -> None:
    missing = [column for column in ("item_id", "title") if column not in columns]
    if missing:
        raise InvalidRequest(f"{path}: the header must name item_id and title (missing: {', '.join(missing)})",
                             "header")
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        raise InvalidRequest(f"{path}: the header repeats {', '.join(repeated)}", "header")
    extra = [column for column in columns if column not in _CSV_FIELDS]
    if extra:
        # The item rules decide which names an attribute may have; ask them once for the header
        # rather than rejecting every row for the same reason.
        try:
            check_catalog_item({"item_id": "header", "title": "header",
                                "attributes": {column: "x" for column in extra}}, "header")
        except InvalidRequest as exc:
            raise InvalidRequest(f"{path}: columns other than {', '.join(_CSV_FIELDS)} become attributes, "
                                 f"and these cannot: {exc}", "header") from None


def _csv_item(cells: dict[str, str], extra: list[str]) -> Row:
    raw: dict[str, Any] = {name: cells[name] for name in ("item_id", "title", "url", "image_url") if name in cells}
    if "categories" in cells:
        raw["categories"] = [part.strip() for part in cells["categories"].split("|") if part.strip()]
    if ("price" in cells) != ("currency" in cells):
        return "price and currency go together: give both or neither"
    if "price" in cells:
        try:
            amount = float(cells["price"])
        except ValueError:
            return f"price {cells['price']!r} is not a number"
        raw["price"] = {"amount": amount, "currency": cells["currency"]}
    for name in ("available", "blocked"):
        if name in cells:
            value = _BOOLEANS.get(cells[name].lower())
            if value is None:
                return f"{name} must be true, false, 1 or 0, got {cells[name]!r}"
            raw[name] = value
    attributes = {column: cells[column] for column in extra if column in cells}
    if attributes:
        raw["attributes"] = attributes
    return raw


# --- JSON lines -----------------------------------------------------------------------------------


def jsonl_items(path: Path) -> Iterator[tuple[int, Row]]:
    """Items of a JSON-lines file, one object per line as the API takes it; blank lines are skipped."""
    with _open_text(path) as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except ValueError as exc:
                yield line_number, f"not JSON: {exc}"
                continue
            yield line_number, raw


def _open_text(path: Path) -> TextIO:
    """*path* as UTF-8 text.

    utf-8-sig: spreadsheet programs often start files with a byte-order mark.
    surrogateescape: bytes that are not UTF-8 become lone surrogates instead of
    ending the import with a UnicodeDecodeError, so the rules reject just their
    row (no text may hold a surrogate) and the rest of the file is read.
    """
    return path.open(newline="", encoding="utf-8-sig", errors="surrogateescape")


#: Format name -> reader.
READERS: dict[str, Callable[[Path], Iterator[tuple[int, Row]]]] = {
    "movielens-100k": movielens_100k_items,
    "csv": csv_items,
    "jsonl": jsonl_items,
}
FORMATS = tuple(READERS)


# --- validation and import ------------------------------------------------------------------------


@dataclass
class CatalogImportSummary:
    """Counts of a catalog import, and the first :data:`KEPT_REJECTIONS` reasons rows were rejected."""

    read: int = 0
    stored: int = 0
    rejected: int = 0
    rejections: list[tuple[int, str]] = field(default_factory=list)

    def reject(self, line_number: int, message: str) -> None:
        """Count a rejected row, keeping its message while fewer than :data:`KEPT_REJECTIONS` are kept."""
        self.rejected += 1
        if len(self.rejections) < KEPT_REJECTIONS:
            self.rejections.append((line_number, message))


def check_row(line_number: int, raw: Row, summary: CatalogImportSummary) -> CatalogItem | None:
    """The item of one row read from a file, or None after counting it as rejected in *summary*."""
    summary.read += 1
    try:
        if isinstance(raw, str):
            raise InvalidRequest(raw)
        return check_catalog_item(raw, "item")
    except InvalidRequest as exc:
        summary.reject(line_number, f"line {line_number}: {exc}")
        return None


def import_file(path: Path, file_format: str, catalog: Catalog, *,
                progress: Callable[[int], None] = lambda lines: None) -> CatalogImportSummary:
    """Validate every row of *path* and upsert the valid items in chunks of :data:`CHUNK`.

    Items are stored in file order, so when the file holds an id twice the later
    row is the one the catalog keeps (a chunk is sent early rather than carry an
    id twice: a BatchWriteItem call may not).

    Parameters
    ----------
    file_format: one of :data:`FORMATS`.
    catalog: where the items go.
    progress: called with the number of lines handled since the last call.

    Returns the counts, with the first rejection messages.

    Raises
    ------
    InvalidRequest
        For an unknown format, or a file that cannot be read as that format
        (``OSError`` when it cannot be opened).
    CatalogUnavailable
        When DynamoDB did not take a chunk. The chunks before it are stored, and
        running the import again is safe: upserts are idempotent.
    """
    if file_format not in READERS:
        raise InvalidRequest(f"unknown format {file_format!r}; expected one of {', '.join(FORMATS)}", "format")
    summary = CatalogImportSummary()
    chunk: dict[str, CatalogItem] = {}
    lines_read = lines_reported = 0

    def flush() -> None:
        nonlocal lines_reported
        if chunk:
            catalog.put(list(chunk.values()))
            summary.stored += len(chunk)
            chunk.clear()
        progress(lines_read - lines_reported)
        lines_reported = lines_read

    for line_number, raw in READERS[file_format](path):
        item = check_row(line_number, raw, summary)
        if item is not None and item.item_id in chunk:
            flush()
        lines_read = line_number
        if item is not None:
            chunk[item.item_id] = item
            if len(chunk) == CHUNK:
                flush()
    flush()
    return summary
