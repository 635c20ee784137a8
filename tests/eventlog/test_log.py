"""The DynamoDB event log on both emulators: idempotent writes, retries, reads and erasure."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.batch_writer import BatchWriter
from chalicelib.eventlog.item import ERASED_KEY, Event, event_model, is_event_key, record_key, table_connection
from chalicelib.eventlog.log import EventLog, UserHistory
from tests.support import FlakyTable, closed_port_url

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
BASE = 0.001


def event(user: str, event_id: str, item: str = "i1", at: datetime = T0, **extra) -> Event:
    return Event(user_id=user, item_id=item, event_type="view", event_id=event_id, timestamp=at, **extra)


def stored_ids(model, user: str) -> list[str]:
    """Event ids of *user* found by a real Query of the table."""
    return sorted(r.event_id for r in model.query(user) if is_event_key(r.record_key))


@pytest.fixture
def model(dynamodb_resources):
    return dynamodb_resources.event_table


@pytest.fixture
def dead_model():
    """A model whose endpoint is a closed local port."""
    return event_model("events", "us-east-1", closed_port_url(), connect_timeout=0.2, retries=0)


def make_log(model, table=None, attempts: int = 8, sleep=lambda seconds: None, **options) -> EventLog:
    """An EventLog on *model* whose batch calls go to *table* (the real connection by default)."""
    batches = BatchWriter(table or table_connection(model), attempts=attempts, retry_base_seconds=BASE, sleep=sleep)
    return EventLog(model, batches=batches, **options)


def flaky(model, failures: int, mode: str = "partial") -> FlakyTable:
    """The first *failures* batch writes misbehave: "partial" does only the first request, "throttle" none."""
    return FlakyTable(table_connection(model), writes=["first" if mode == "partial" else "throttle"] * failures)


# --- idempotent writes --------------------------------------------------------------------------


def test_writes_are_idempotent_per_user_and_event_id_and_keep_the_first_content(model):
    """Same id for two users: both stored; rewrites and in-call repeats: duplicates."""
    log = make_log(model)
    first = [event("u1", "a", item="i1"), event("u1", "b", item="i2"), event("u2", "a", item="i3")]
    receipt = log.write(first)
    assert (receipt.stored, receipt.duplicates, receipt.failed) == ([0, 1, 2], [], [])
    assert stored_ids(model, "u1") == ["a", "b"] and stored_ids(model, "u2") == ["a"]

    changed = [event("u1", "a", item="other"), event("u1", "b", item="other"), event("u2", "a", item="other")]
    again = log.write(changed)
    assert (again.stored, again.duplicates, again.failed) == ([], [0, 1, 2], [])
    assert model.get("u1", record_key("a")).item_id == "i1"
    assert model.get("u2", record_key("a")).item_id == "i3"

    repeats = log.write([event("u3", "x", item="first"), event("u3", "y"), event("u3", "x", item="2nd"),
                         event("u3", "x", item="3rd")])
    assert (repeats.stored, repeats.duplicates, repeats.failed) == ([0, 1], [2, 3], [])
    assert stored_ids(model, "u3") == ["x", "y"]
    assert model.get("u3", record_key("x")).item_id == "first"


def test_twenty_concurrent_writers_of_one_event_store_exactly_one_item(model):
    """The key comes from the event id, so racing writers land on one item (each may report it stored)."""
    stored_ids(model, "warm-up")  # create the shared botocore client before the threads start
    barrier = threading.Barrier(20)
    receipts = []

    def writer() -> None:
        log = make_log(model)
        barrier.wait()
        receipts.append(log.write([event("u1", "same")]))

    threads = [threading.Thread(target=writer) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(receipts) == 20 and all(r.failed == [] and r.stored + r.duplicates == [0] for r in receipts)
    assert sum(1 for r in model.query("u1") if is_event_key(r.record_key)) == 1


def test_many_events_go_in_batches_within_dynamodb_limits_and_are_all_stored(model):
    """130 events: writes of at most 25 items, duplicate checks of at most 100 keys."""
    counting = flaky(model, failures=0)
    log = make_log(model, table=counting)
    events = [event("u1", f"e{n:03d}", at=T0 + timedelta(seconds=n)) for n in range(130)]
    receipt = log.write(events)
    assert receipt.stored == list(range(130)) and receipt.failed == []
    assert sorted(counting.write_calls) == [5, 25, 25, 25, 25, 25]
    assert stored_ids(model, "u1") == [f"e{n:03d}" for n in range(130)]
    assert log.write(events).duplicates == list(range(130))


def test_injected_failures_are_retried_with_jittered_growing_backoff_until_all_are_stored(model):
    for mode in ("partial", "throttle"):
        delays: list[float] = []
        table = flaky(model, failures=7, mode=mode)
        events = [event(mode, f"e{n}") for n in range(10)]
        receipt = make_log(model, table=table, attempts=10, sleep=delays.append).write(events)
        assert (receipt.stored, receipt.failed) == (list(range(10)), []), mode
        assert stored_ids(model, mode) == sorted(f"e{n}" for n in range(10))
        assert len(delays) == 7
        assert all(0 <= delay <= BASE * 2 ** n for n, delay in enumerate(delays)), delays
        assert max(delays) > BASE  # only a widening window allows this (P(all <= BASE) = 2**-21)
        assert len(set(delays)) > 1  # jittered, not a fixed pause


def test_exhausted_retries_report_exactly_the_unprocessed_positions_as_failed(model):
    """Never reports as stored what is not: the receipt matches a Query of the table."""
    for mode, processed in (("partial", 3), ("throttle", 0)):
        table = flaky(model, failures=100, mode=mode)
        events = [event(mode, f"e{n}") for n in range(10)]
        receipt = make_log(model, table=table, attempts=3).write(events)
        forwarded = {item["event_id"]["S"] for item in table.forwarded}
        assert len(forwarded) == processed
        assert receipt.stored == [n for n, e in enumerate(events) if e.event_id in forwarded]
        assert receipt.failed == [n for n, e in enumerate(events) if e.event_id not in forwarded]
        assert stored_ids(model, mode) == sorted(forwarded)


# Regression: a repeat of an event that could not be stored was reported as a duplicate (so as stored).
def test_write_to_a_dead_endpoint_reports_every_event_failed(dead_model):
    receipt = make_log(dead_model, attempts=2).write([event("u1", "a"), event("u1", "b"), event("u1", "a")])
    # The repeat of "a" is not stored either, so it is reported failed, not duplicate.
    assert (receipt.stored, receipt.duplicates, receipt.failed) == ([], [], [0, 1, 2])


# --- reading ---------------------------------------------------------------------------------------


def test_recent_is_newest_first_by_event_time_bounded_and_per_user(model):
    log = make_log(model)
    log.write([event("u1", "mid", at=T0 + timedelta(hours=1))])
    log.write([event("u1", "old", at=T0)])
    log.write([event("u1", "newest", at=T0 + timedelta(hours=3), value=4.5, session_id="s1", source="web")])
    # 13:30 at +02:00 is 11:30 UTC: older than "old" despite the later wall-clock text.
    log.write([event("u1", "oldest", at=datetime(2026, 1, 1, 13, 30, tzinfo=timezone(timedelta(hours=2))))])
    log.write([event("u2", "theirs", at=T0 + timedelta(hours=5))])

    before_last_write = datetime.now(timezone.utc)
    log.write([event("u1", "latest-stored", at=T0 - timedelta(days=1))])

    history = log.recent("u1", 3)
    assert [e.event_id for e in history.events] == ["newest", "mid", "old"]
    assert history.erased_at is None
    newest = history.events[0]
    assert replace(newest, received_at=None) == event("u1", "newest", at=T0 + timedelta(hours=3), value=4.5,
                                                      session_id="s1", source="web")
    # The log stamps when it stored each event: serving compares that with the model's cutoff.
    assert newest.received_at < before_last_write
    latest_stored = log.recent("u1", 10).events[-1]
    assert latest_stored.event_id == "latest-stored" and latest_stored.received_at >= before_last_write
    assert [e.event_id for e in log.recent("u1", 10).events] == ["newest", "mid", "old", "oldest", "latest-stored"]


def test_recent_raises_event_log_unavailable_when_the_endpoint_is_dead(dead_model):
    started = time.monotonic()
    with pytest.raises(EventLogUnavailable):
        EventLog(dead_model).recent("u1", 5)
    assert time.monotonic() - started < 3


# --- erasure ---------------------------------------------------------------------------------------


def test_erase_deletes_every_event_and_leaves_a_bare_marker(model):
    log = make_log(model)
    log.write([event("u1", f"e{n:02d}", at=T0 + timedelta(minutes=n), session_id="s") for n in range(65)])
    log.write([event("u2", "keep1"), event("u2", "keep2")])

    receipt = log.erase("u1")
    assert (receipt.user_id, receipt.deleted_events) == ("u1", 65)
    assert stored_ids(model, "u1") == []
    raw = table_connection(model).get_item("u1", ERASED_KEY)["Item"]
    assert set(raw) == {"user_id", "record_key", "time_key", "erased_at"}
    assert model.get("u1", ERASED_KEY).erased_at == receipt.erased_at
    assert log.recent("u1", 10) == UserHistory(events=[], erased_at=receipt.erased_at)
    assert stored_ids(model, "u2") == ["keep1", "keep2"]

    log.write([event("u1", "after", at=receipt.erased_at + timedelta(seconds=1))])
    history = log.recent("u1", 10)
    assert [e.event_id for e in history.events] == ["after"] and history.erased_at == receipt.erased_at


# Regression (reliability audit): after a DELETE, an event with an earlier timestamp was accepted and
# stored, then ignored by serving and training, which judged erasure by the client's timestamp.
def test_an_event_received_after_an_erasure_is_new_activity_whatever_its_timestamp(model):
    log = make_log(model)
    log.write([event("u1", "before", at=T0)])
    receipt = log.erase("u1")

    log.write([event("u1", "late-but-new", at=T0 - timedelta(days=30))])

    assert stored_ids(model, "u1") == ["late-but-new"]
    history = log.recent("u1", 10)
    assert [e.event_id for e in history.events] == ["late-but-new"]
    assert history.erased_at == receipt.erased_at


# Regression (reliability audit): deleting a user while 3 threads posted events for them left 25
# events behind in 2 of 6 tries.
@pytest.mark.parametrize("attempt", range(3))
def test_no_event_received_before_an_erasure_survives_it_even_while_writes_race(model, attempt):
    log = make_log(model)
    log.write([event("u1", f"old-{n}") for n in range(20)])
    stop = threading.Event()

    def keep_writing(writer: int) -> None:
        n = 0
        while not stop.is_set():
            log.write([event("u1", f"w{writer}-{n}-{k}") for k in range(5)])
            n += 1

    writers = [threading.Thread(target=keep_writing, args=(w,)) for w in range(3)]
    for writer in writers:
        writer.start()
    time.sleep(0.05)
    receipt = log.erase("u1")
    left_at_return = [r for r in model.query("u1", consistent_read=True) if is_event_key(r.record_key)]
    stop.set()
    for writer in writers:
        writer.join()

    left = [r for r in model.query("u1", consistent_read=True) if is_event_key(r.record_key)]
    assert [r.event_id for r in left if r.received_at <= receipt.erased_at] == []
    # The moment it returned, only writes still finishing their own check could hold older events,
    # and serving already ignored them.
    assert all(r.event_id.startswith("w") for r in left_at_return if r.received_at <= receipt.erased_at)
    history = log.recent("u1", 100)
    assert all(e.received_at > receipt.erased_at for e in history.events)


def test_erasing_twice_is_harmless_and_the_second_finds_nothing(model):
    log = make_log(model)
    log.write([event("u1", "a"), event("u1", "b")])
    assert log.erase("u1").deleted_events == 2
    second = log.erase("u1")
    assert second.deleted_events == 0 and stored_ids(model, "u1") == []


def test_erase_completes_despite_unprocessed_deletes(model):
    make_log(model).write([event("u1", f"e{n}") for n in range(30)] + [event("u2", "keep")])
    table = flaky(model, failures=3)
    receipt = make_log(model, table=table).erase("u1")
    assert receipt.deleted_events == 30
    assert table.write_calls[:4] == [25, 24, 23, 22]  # the unprocessed deletes were sent again
    assert stored_ids(model, "u1") == [] and stored_ids(model, "u2") == ["keep"]


# --- retention -------------------------------------------------------------------------------------


def test_retention_sets_expiry_to_event_time_plus_days_and_default_leaves_none(model):
    recent_time = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    make_log(model, retention_days=2).write([event("u1", "kept", at=recent_time)])
    make_log(model).write([event("u1", "forever", at=recent_time)])
    assert model.get("u1", record_key("kept")).expires_at == recent_time + timedelta(days=2)
    assert model.get("u1", record_key("forever")).expires_at is None
