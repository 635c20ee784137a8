"""Retried batch calls on both emulators: what is done is reported done, what is not is reported by key."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from chalicelib.deadlines import Deadline
from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.batch_writer import BatchWriter
from chalicelib.eventlog.item import Event, EventRecord, record_key, table_connection
from tests.support import FakeClock, FlakyTable

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def model(dynamodb_resources):
    return dynamodb_resources.event_table


def items(model, user: str, count: int) -> dict:
    """*count* serialised events of *user*, by key."""
    records = [EventRecord.of_event(Event(user, "i", "view", f"e{n}", T0), T0) for n in range(count)]
    return {(user, record.record_key): record.serialize() for record in records}


def writer(table, attempts: int = 3) -> BatchWriter:
    return BatchWriter(table, attempts=attempts, retry_base_seconds=0.001, sleep=lambda seconds: None)


def stored_keys(model, user: str) -> set:
    return {(user, record.record_key) for record in model.query(user)}


def test_put_retries_what_comes_back_unprocessed_and_reports_what_never_goes_in(model):
    table = FlakyTable(table_connection(model), writes=["half", "throttle"], never_store={"e3"})

    left = writer(table, attempts=4).put(items(model, "u1", 6))

    assert left == {("u1", record_key("e3"))}
    assert stored_keys(model, "u1") == set(items(model, "u1", 6)) - left
    assert table.write_calls == [6, 4, 4, 1]  # all; the half left plus e3; throttled; e3 again (last attempt)


def test_delete_retries_until_every_key_is_gone(model):
    writer(table_connection(model)).put(items(model, "u1", 5))
    table = FlakyTable(table_connection(model), writes=["first", "first"])

    assert writer(table).delete(sorted(items(model, "u1", 5))) == set()
    assert stored_keys(model, "u1") == set() and table.write_calls == [5, 4, 3]


def test_an_error_that_is_not_transient_is_not_retried(model):
    bad = {("u1", record_key("bad")): {"user_id": {"S": "u1"}}}  # no sort key: DynamoDB refuses the request
    table = FlakyTable(table_connection(model))

    assert writer(table, attempts=5).put(bad) == set(bad)
    assert table.write_calls == [1]


def test_find_existing_retries_unprocessed_and_throttled_reads(model):
    written = items(model, "u1", 3)
    writer(table_connection(model)).put(written)
    asked = sorted(written) + [("u1", record_key("never")), ("u2", record_key("e0"))]
    table = FlakyTable(table_connection(model), reads=["half", "throttle", "half"])

    assert writer(table, attempts=5).find_existing(asked) == set(written)
    assert table.faults_left == 0


def test_find_existing_gives_up_with_event_log_unavailable(model):
    table = FlakyTable(table_connection(model), reads=["throttle"] * 3)

    with pytest.raises(EventLogUnavailable, match="did not answer in time"):
        writer(table, attempts=3).find_existing([("u1", record_key("e0"))])


def test_retries_stop_before_the_deadline(model):
    """No attempt starts unless its backoff and one whole call fit in what is left of the request's time."""
    clock = FakeClock()
    started = clock.now

    def sleep(seconds: float) -> None:
        clock.now += seconds

    table = FlakyTable(table_connection(model), writes=["throttle"] * 50)
    batches = BatchWriter(table, attempts=50, retry_base_seconds=0.1, call_seconds=0.5, sleep=sleep)

    left = batches.put(items(model, "u1", 3), Deadline(2.0, clock=clock))

    assert len(left) == 3
    assert clock.now - started <= 2.0 - 0.5  # the last attempt still had a whole call's time
    assert 1 < len(table.write_calls) < 50
    with pytest.raises(EventLogUnavailable):  # no time for even one call: none is made
        batches.find_existing(list(items(model, "u1", 1)), Deadline(0.4, clock=clock))
