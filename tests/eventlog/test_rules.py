"""What an event may hold: ids, numbers and times checked so that whatever passes, DynamoDB stores."""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chalicelib.api.validation import parse_event_batch
from chalicelib.errors import InvalidRequest
from chalicelib.eventlog.batch_writer import BatchWriter
from chalicelib.eventlog.item import (
    MAX_PARTITION_KEY_BYTES,
    MAX_SORT_KEY_BYTES,
    MIN_NUMBER_MAGNITUDE,
    record_key,
    table_connection,
    time_key,
)
from chalicelib.eventlog.log import EventLog
from chalicelib.eventlog.rules import (
    EVENT_SOURCES,
    MAX_ID_LENGTH,
    check_event,
    check_id,
    parse_timestamp,
)
from tests import strategies
from tests.strategies import NOW, PURE, RULES

EMOJI = "\U0001F600"  # 4 bytes in UTF-8


def event(**fields):
    return check_event({"user_id": "u", "item_id": "i", "event_type": "view", **fields}, RULES, NOW, "e")


# --- ids ---------------------------------------------------------------------------------------


# Regression: look-alike ids passed, so "u0 " was silently another user than "u0".
@pytest.mark.parametrize("value", [
    "u0 ", " u0", "u0\u00a0", "\u3000u0", "u0\u2028",       # whitespace at either end
    "u\u200b0", "\u202eu0", "\ufeffu0", "u\u00ad0",         # format characters (Cf)
    "u\x000", "u\x7f0", "u\x850",                           # control characters (Cc)
    "\ud800", "u\udfff", "\udcff",                          # lone surrogates: not UTF-8
    "%00", "u%2F0", "100%ab",                              # percent-escapes (a path would decode them)
    "", "x" * 257,
])
def test_ids_that_could_pass_for_another_id_or_not_be_stored_are_refused(value):
    with pytest.raises(InvalidRequest) as refused:
        check_id(value, "user_id")
    assert refused.value.field == "user_id"


def test_ids_are_normalised_to_nfc_and_otherwise_kept():
    assert check_id("Jose\u0301", "user_id") == "Jos\u00e9"
    assert check_id("\u212b", "user_id") == "\u00c5"  # the Ångström sign is the letter Å
    for kept in ("u 0", "100%", "50%off", "a%2", "\ue000", EMOJI * 256, "x" * 256):
        assert check_id(kept, "user_id") == kept


# Regression: 256 emoji are 1,024 bytes; with the "e#" prefix the item's sort key passed DynamoDB's limit.
def test_event_ids_fit_the_sort_keys_they_become():
    assert event(event_id=EMOJI * 249).event_id == EMOJI * 249  # 996 bytes
    for too_long in (EMOJI * 250, EMOJI * 256, EMOJI * 247 + "\u4e00" * 9):  # 1,000 to 1,024 bytes
        with pytest.raises(InvalidRequest, match="bytes") as refused:
            event(event_id=too_long)
        assert refused.value.field == "e.event_id"


# --- values --------------------------------------------------------------------------------------


# Regression: 1e-200 passed, and DynamoDB refused the write batch it was in.
@pytest.mark.parametrize("value", [1e-200, -1e-131, 5e-324, 9.99e-131])
def test_values_dynamodb_numbers_cannot_hold_are_refused(value):
    with pytest.raises(InvalidRequest) as refused:
        event(value=value)
    assert refused.value.field == "e.value"


@pytest.mark.parametrize("value", [0, 0.0, -0.0, 1e-130, -1e-130, 1e9, -1e9, 3])
def test_values_within_dynamodb_numbers_are_kept(value):
    assert event(value=value).value == value


# --- times ---------------------------------------------------------------------------------------


# Regression: moving these to UTC overflowed the calendar; the OverflowError was a 500 or an aborted import.
@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00",
                                   "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59.999999-00:01"])
def test_times_beyond_the_calendar_in_utc_are_refused(value):
    with pytest.raises(InvalidRequest) as refused:
        parse_timestamp(value, "timestamp")
    assert refused.value.field == "timestamp"


# --- properties: any input is a valid result or an InvalidRequest, and what passes can be stored ---


def assert_is_an_id(value: str, max_bytes: int | None = None) -> None:
    """*value* satisfies every rule of ids (README, "API")."""
    assert isinstance(value, str) and 1 <= len(value) <= MAX_ID_LENGTH
    assert unicodedata.is_normalized("NFC", value)
    encoded = value.encode("utf-8")  # raises on a lone surrogate
    assert not {unicodedata.category(character) for character in value} & {"Cc", "Cf", "Cs"}
    assert not value[0].isspace() and not value[-1].isspace()
    assert re.search("%[0-9A-Fa-f]{2}", value) is None
    assert max_bytes is None or len(encoded) <= max_bytes


@PURE
@given(st.one_of(strategies.texts, strategies.json_values))
def test_any_id_is_refused_or_returned_in_nfc_and_then_stable(value):
    try:
        checked = check_id(value, "user_id")
    except InvalidRequest as refused:
        assert refused.field == "user_id"
        return
    assert_is_an_id(checked)
    assert checked == unicodedata.normalize("NFC", value)
    assert check_id(checked, "user_id") == checked


@PURE
@given(strategies.timestamps)
def test_any_timestamp_is_refused_or_an_instant_in_utc(value):
    try:
        parsed = parse_timestamp(value, "timestamp")
    except InvalidRequest as refused:
        assert refused.field == "timestamp"
        return
    assert parsed.utcoffset() == timedelta(0)


@PURE
@given(strategies.raw_events(RULES.event_types, NOW))
def test_any_event_is_refused_or_fits_the_item_dynamodb_stores(raw):
    try:
        checked = check_event(raw, RULES, NOW, "e")
    except InvalidRequest as refused:
        assert refused.field is not None and refused.field.startswith("e")
        return
    assert_is_an_id(checked.user_id, MAX_PARTITION_KEY_BYTES)
    assert_is_an_id(checked.item_id)
    assert_is_an_id(checked.event_id, MAX_SORT_KEY_BYTES)
    if checked.session_id is not None:
        assert_is_an_id(checked.session_id)
    # The keys DynamoDB checks, as the item builds them.
    assert len(record_key(checked.event_id).encode()) <= MAX_SORT_KEY_BYTES
    assert len(time_key(checked.timestamp, checked.event_id).encode()) <= MAX_SORT_KEY_BYTES
    assert checked.value is None or checked.value == 0 or MIN_NUMBER_MAGNITUDE <= abs(checked.value) <= 1e9
    assert NOW - RULES.max_age <= checked.timestamp <= NOW + RULES.max_future
    assert checked.event_type in RULES.event_types and checked.source in {None, *EVENT_SOURCES}


@pytest.fixture
def round_trip(dynamodb_resources):
    """(the event rules, an EventLog, its batch calls) on one emulator, built once for every example:
    a connection's botocore client takes longer to build than a round trip takes."""
    model = dynamodb_resources.event_table
    batches = BatchWriter(table_connection(model), attempts=2, sleep=lambda seconds: None)
    return dynamodb_resources.event_rules, EventLog(model, batches=batches), batches


@strategies.ROUND_TRIP
@given(batch=st.lists(st.one_of(strategies.plausible_events(RULES.event_types, datetime.now(timezone.utc)),
                                strategies.near_edge_events(RULES.event_types, datetime.now(timezone.utc))),
                      min_size=1, max_size=4))
def test_what_validation_accepts_dynamodb_stores_and_gives_back_equal(round_trip, batch):
    """Through the real EventLog, on both emulators: each accepted event comes back from the user's
    history (the time index Query serving uses) equal to what was accepted."""
    rules, log, batches = round_trip
    try:
        events = parse_event_batch(json.dumps({"events": batch}).encode(), rules, datetime.now(timezone.utc))
    except InvalidRequest:
        assume(False)  # refusals are the other tests' business; here, what passes must be stored
    first = {}
    for event in events:
        first.setdefault((event.user_id, event.event_id), event)
    try:
        receipt = log.write(events)
        assert receipt.failed == [] and len(receipt.stored) == len(first)
        for user_id in {user for user, _ in first}:
            history = {event.event_id: replace(event, received_at=None)
                       for event in log.recent(user_id, len(events) + 1).events}
            assert history == {event_id: event for (user, event_id), event in first.items() if user == user_id}
    finally:  # every example starts from an empty table
        assert batches.delete([(user, record_key(event_id)) for user, event_id in first]) == set()
