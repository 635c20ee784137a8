"""Bulk import of interaction files into the event log (both emulators, small temporary files)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.config import DEFAULT_EVENT_WEIGHTS
from chalicelib.errors import InvalidRequest
from chalicelib.eventlog import importer
from chalicelib.eventlog.batch_writer import BatchWriter
from chalicelib.eventlog.importer import ImportAborted, import_file
from chalicelib.eventlog.item import is_event_key, table_connection
from chalicelib.eventlog.log import EventLog

EVENT_TYPES = frozenset(DEFAULT_EVENT_WEIGHTS)
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)


@pytest.fixture
def model(dynamodb_resources):
    return dynamodb_resources.event_table


@pytest.fixture
def log(model):
    return EventLog(model, batches=BatchWriter(table_connection(model), attempts=3, retry_base_seconds=0.001,
                                               sleep=lambda s: None))


def run(path, file_format, log, **options):
    return import_file(path, file_format, log, EVENT_TYPES, now=NOW, **options)


def stored(model, user):
    """The stored events of *user* by event id, from a real Query."""
    return {r.event_id: r for r in model.query(user) if is_event_key(r.record_key)}


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_movielens_100k_ratings_become_idempotent_rating_events_and_bad_lines_are_reported(tmp_path, model, log):
    path = write(tmp_path, "u.data", "1\t10\t4\t881250949\n"
                                     "1\t11\t3\n"               # line 2: three fields
                                     "\n"                        # blank lines are skipped
                                     "2\t10\tfive\t881250950\n"  # line 4: rating not a number
                                     "2\t12\t2.5\t881250951\n")
    summary = run(path, "movielens-100k", log)
    assert (summary.read, summary.stored, summary.duplicates, summary.not_stored) == (4, 2, 0, 0)
    assert [line for line, _ in summary.rejected] == [2, 4]
    assert all(message.startswith(f"line {line}") for line, message in summary.rejected)

    event = stored(model, "1")["ml:1:10"]
    assert (event.item_id, event.event_type, event.value, event.source) == ("10", "rating", 4, "import")
    assert event.timestamp == datetime.fromtimestamp(881250949, tz=timezone.utc)
    assert stored(model, "2")["ml:2:12"].value == 2.5
    assert list(stored(model, "2")) == ["ml:2:12"]

    again = run(path, "movielens-100k", log)
    assert (again.stored, again.duplicates, len(again.rejected)) == (0, 2, 2)

    with pytest.raises(ImportAborted, match="^line 2"):
        run(path, "movielens-100k", log, strict=True)


def test_movielens_csv_needs_its_header_and_reports_bad_rows_by_line(tmp_path, model, log):
    path = write(tmp_path, "ratings.csv", "userId,movieId,rating,timestamp\n"
                                          "7,70,4.5,1700000000\n"
                                          "7,71,abc,1700000001\n"
                                          "8,70,1,1700000002\n")
    summary = run(path, "movielens-csv", log)
    assert (summary.read, summary.stored, [line for line, _ in summary.rejected]) == (3, 2, [3])
    event = stored(model, "7")["ml:7:70"]
    assert (event.event_type, event.value, event.timestamp) == (
        "rating", 4.5, datetime.fromtimestamp(1700000000, tz=timezone.utc))
    assert (run(path, "movielens-csv", log).stored, run(path, "movielens-csv", log).duplicates) == (0, 2)
    with pytest.raises(ImportAborted, match="^line 3"):
        run(path, "movielens-csv", log, strict=True)

    no_rating = write(tmp_path, "bad.csv", "userId,movieId,timestamp\n7,70,1700000000\n")
    with pytest.raises(InvalidRequest, match="rating"):
        run(no_rating, "movielens-csv", log)


def test_generic_csv_defaults_accepts_both_time_forms_and_rejects_unknown_types(tmp_path, model, log, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK", 2)  # several chunks, so progress is reported more than once
    calls: list[int] = []
    path = write(tmp_path, "events.csv", "user_id,item_id,event_type,value,timestamp,event_id\n"
                                         "u1,i1,,,2026-01-01T10:00:00Z,e1\n"
                                         "u1,i2,click,2.5,1767225600,e2\n"
                                         "u1,i3,teleport,,,e3\n"
                                         "u1,i4,purchase,,2026-01-02T01:00:00+02:00,\n")
    summary = run(path, "csv", log, progress=calls.append)
    assert (summary.read, summary.stored) == (4, 3)
    assert [line for line, _ in summary.rejected] == [4] and "teleport" in summary.rejected[0][1]
    assert sum(calls) == summary.read and len(calls) == 3  # chunk of 2, the rejected row, chunk of 1

    events = stored(model, "u1")
    assert (events["e1"].event_type, events["e1"].timestamp) == ("view", datetime(2026, 1, 1, 10, tzinfo=timezone.utc))
    assert (events["e2"].event_type, events["e2"].value) == ("click", 2.5)
    assert events["e2"].timestamp == datetime(2026, 1, 1, tzinfo=timezone.utc)
    (derived,) = [e for e in events.values() if e.item_id == "i4"]
    assert derived.event_id not in {"e1", "e2", "e3"}
    assert derived.timestamp == datetime(2026, 1, 1, 23, tzinfo=timezone.utc)


def test_csv_rows_without_event_id_are_idempotent_yet_identical_rows_are_kept_apart(tmp_path, model, log):
    path = write(tmp_path, "views.csv", "user_id,item_id\nu1,i1\nu1,i1\nu1,i2\n")
    first = run(path, "csv", log)
    assert (first.stored, first.duplicates) == (3, 0)
    assert sorted(e.item_id for e in stored(model, "u1").values()) == ["i1", "i1", "i2"]
    again = run(path, "csv", log)
    assert (again.stored, again.duplicates) == (0, 3)
    assert len(stored(model, "u1")) == 3


# Regression: the byte-order mark spreadsheet programs write stuck to the first column's name,
# so a valid header was refused.
def test_a_csv_starting_with_a_byte_order_mark_is_read(tmp_path, model, log):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffuser_id,item_id,event_id\nu1,i1,bom-1\n".encode())

    summary = run(path, "csv", log)

    assert (summary.read, summary.stored, summary.rejected) == (1, 1, [])
    assert stored(model, "u1")["bom-1"].item_id == "i1"


@pytest.mark.parametrize("header", ["user_id,item_id,rating", "item_id,event_type"])
def test_csv_header_with_unknown_or_missing_columns_is_refused(tmp_path, header):
    path = write(tmp_path, "bad.csv", f"{header}\nu1,i1,4\n")
    with pytest.raises(InvalidRequest):
        import_file(path, "csv", None, EVENT_TYPES, now=NOW)


# Regression: a value DynamoDB refuses (1e-200), an event id over its key limits, or bytes that are
# not UTF-8 made the whole write batch fail, so up to 24 valid rows were counted "not stored" and
# the bad row was never reported (invalid UTF-8 aborted the import).
def test_rows_dynamodb_cannot_store_are_rejected_and_the_rest_of_their_chunk_is_stored(tmp_path, model, log):
    rows = [f"u1,i{n},e{n},".encode() for n in range(30)]
    rows[3] = b"u1,i3,e3,1e-200"
    rows[11] = "u1,i11,{},".format("\U0001F600" * 256).encode()
    rows[19] = b"u1,i\xff19,e19,"
    path = tmp_path / "events.csv"
    path.write_bytes(b"user_id,item_id,event_id,value\n" + b"\n".join(rows) + b"\n")

    summary = run(path, "csv", log)

    assert [line for line, _ in summary.rejected] == [5, 13, 21]  # header is line 1
    assert "value" in summary.rejected[0][1] and "event_id" in summary.rejected[1][1]
    assert "item_id" in summary.rejected[2][1]
    assert (summary.read, summary.stored, summary.not_stored) == (30, 27, 0)
    assert len(stored(model, "u1")) == 27


# Regression: a time near year 1 or 9999 overflowed once moved to UTC; the OverflowError ended the import.
def test_a_timestamp_overflowing_the_calendar_is_a_rejected_row_not_an_aborted_import(tmp_path, model, log):
    path = write(tmp_path, "events.csv", "user_id,item_id,timestamp\n"
                                         "u1,i1,0001-01-01T00:00:00+05:00\n"
                                         "u1,i2,9999-12-31T23:59:59-05:00\n"
                                         "u1,i3,2026-01-01T00:00:00Z\n")

    summary = run(path, "csv", log)

    assert [line for line, _ in summary.rejected] == [2, 3]
    assert all("timestamp" in message for _, message in summary.rejected)
    assert (summary.stored, summary.not_stored) == (1, 0)
