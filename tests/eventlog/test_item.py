"""The event item: keys, the time index layout, stored times, and the record of an event."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from chalicelib.eventlog.item import (
    ERASED_KEY,
    ERASED_TIME_KEY,
    Event,
    EventRecord,
    event_id_of,
    is_event_key,
    parse_stored_time,
    raw_key,
    raw_key_of,
    record_key,
    time_key,
    time_key_instants,
)

T0 = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)


def test_an_events_sort_key_comes_from_its_id_alone():
    assert record_key("abc") == "e#abc"
    assert event_id_of(record_key("a#b")) == "a#b"
    assert is_event_key(record_key("x")) and not is_event_key(ERASED_KEY)


def test_time_keys_are_utc_milliseconds_then_the_id():
    plus_two = T0.astimezone(timezone(timedelta(hours=2)))
    assert time_key(plus_two, "ev1") == "2026-01-01T12:00:00.123Z#ev1"  # microseconds truncated, not rounded


def test_time_keys_sort_in_time_order_with_the_erasure_marker_last():
    moments = [T0 + timedelta(milliseconds=step) for step in (0, 1, 999, 1000, 86_400_000)]
    keys = [time_key(moment, "z") for moment in reversed(moments)] + [ERASED_TIME_KEY]
    assert sorted(keys) == [time_key(moment, "z") for moment in moments] + [ERASED_TIME_KEY]


def test_time_key_instants_read_the_time_back_to_the_millisecond():
    keys = [time_key(T0, "a#b"), time_key(T0 + timedelta(days=400), "c")]
    assert time_key_instants(keys).tolist() == [
        np.datetime64("2026-01-01T12:00:00.123", "ms").tolist(),
        np.datetime64("2027-02-05T12:00:00.123", "ms").tolist(),
    ]
    assert time_key_instants([]).dtype == np.dtype("datetime64[ms]")


def test_stored_times_parse_in_pynamodbs_format_and_iso_8601():
    expected = datetime(2026, 1, 1, 10, 0, tzinfo=timezone.utc)
    for text in ("2026-01-01T10:00:00.000000+0000", "2026-01-01T10:00:00Z", "2026-01-01T12:00:00+02:00"):
        assert parse_stored_time(text) == expected


def test_an_event_record_holds_the_event_and_gives_it_back():
    event = Event(user_id="u1", item_id="i1", event_type="click", event_id="ev1", timestamp=T0, value=2.5,
                  session_id="s1", source="web")
    received = T0 + timedelta(seconds=3)

    item = EventRecord.of_event(event, received, expires_at=T0 + timedelta(days=30)).serialize()

    assert raw_key(item) == ("u1", "e#ev1")
    assert raw_key_of("u1", "e#ev1") == {"user_id": item["user_id"], "record_key": item["record_key"]}
    assert item["time_key"] == {"S": "2026-01-01T12:00:00.123Z#ev1"}
    assert parse_stored_time(item["received_at"]["S"]) == received
    assert "erased_at" not in item
    restored = EventRecord.from_raw_data(item).to_event()
    assert restored == Event(**{**event.__dict__, "received_at": received})


def test_the_erasure_marker_holds_only_the_id_and_the_time():
    item = EventRecord.erasure_marker("u1", T0).serialize()

    assert set(item) == {"user_id", "record_key", "time_key", "erased_at"}
    assert raw_key(item) == ("u1", ERASED_KEY) and item["time_key"] == {"S": ERASED_TIME_KEY}
    assert EventRecord.from_raw_data(item).is_erasure_marker
