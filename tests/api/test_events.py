"""POST /events and DELETE /users/{id} end to end, on both DynamoDB emulators."""

from __future__ import annotations

import functools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from chalicelib.api.events import record_events
from chalicelib.api.validation import parse_event_batch
from chalicelib.eventlog.batch_writer import BatchWriter
from chalicelib.eventlog.item import event_model, table_connection
from chalicelib.eventlog.log import EventLog
from chalicelib.resources import Resources, reset_app_resources
from tests.support import JSON_HEADERS, FlakyTable


def post_events(client, body):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    response = client.http.post("/events", body=raw, headers=JSON_HEADERS)
    return response.status_code, json.loads(response.body)


def click(user_id="u-1", item_id="i-1", **extra):
    return {"user_id": user_id, "item_id": item_id, "event_type": "click", **extra}


@functools.cache
def table_of(settings):
    return Resources(settings).event_table


def stored_events(settings, user_id):
    """The user's event items, read back with a Query (the erasure marker left out)."""
    return [r for r in table_of(settings).query(user_id, consistent_read=True) if not r.is_erasure_marker]


def all_items(settings):
    return list(table_of(settings).scan())


# --- storing ----------------------------------------------------------------------------------


def test_events_are_stored_with_a_receipt_and_a_resend_counts_as_duplicates(events_client, dynamodb_settings):
    now = int(time.time())
    old = datetime.fromtimestamp(now, timezone.utc) - timedelta(days=364)
    batch = [
        click("u-1", "i-1", event_id="evt-1", value=3, session_id="s-1", source="web"),
        # ISO with an offset, near the oldest accepted; unix seconds, near the latest accepted.
        {"user_id": "u-1", "item_id": "i-2", "event_type": "view",
         "timestamp": old.astimezone(timezone(timedelta(hours=2))).isoformat()},
        {"user_id": "u-2", "item_id": "i-1", "event_type": "purchase", "timestamp": now + 240},
    ]
    status, receipt = post_events(events_client, {"events": batch})

    assert status == 202, receipt
    assert (receipt["accepted"], receipt["duplicates"]) == (3, 0)
    ids = receipt["event_ids"]
    assert ids[0] == "evt-1" and all(isinstance(i, str) and i for i in ids) and len(set(ids)) == 3  # 2 server-made
    first, second = sorted(stored_events(dynamodb_settings, "u-1"), key=lambda r: r.item_id)
    assert (first.event_id, first.event_type, first.value, first.session_id, first.source) == (
        "evt-1", "click", 3, "s-1", "web")
    assert (second.event_id, second.event_type, second.timestamp) == (ids[1], "view", old)
    [third] = stored_events(dynamodb_settings, "u-2")
    assert (third.event_id, third.timestamp) == (ids[2], datetime.fromtimestamp(now + 240, timezone.utc))

    resent = [{**event, "event_id": event_id} for event, event_id in zip(batch, ids, strict=True)]
    status, again = post_events(events_client, {"events": resent})

    assert (status, again["accepted"], again["duplicates"], again["event_ids"]) == (202, 0, 3, ids)
    assert len(all_items(dynamodb_settings)) == 3

    # The same event twice in one batch is stored once.
    status, twice = post_events(events_client, {"events": [click("u-3", event_id="e"), click("u-3", event_id="e")]})
    assert status == 202 and (twice["accepted"], twice["duplicates"]) == (1, 1)
    assert len(stored_events(dynamodb_settings, "u-3")) == 1


def test_concurrent_identical_posts_store_the_event_once(events_client, dynamodb_settings):
    """20 simultaneous deliveries of one event leave exactly one item.

    Not sent through chalice's test Client from 20 threads: it swaps the
    process-wide ``os.environ`` around each request and keeps the request in
    the single ``app.current_request``, so it is not thread-safe. The threads
    run what the route runs instead (parse_event_batch + record_events), on 4
    EventLogs on connections of their own (4 warm instances, 5 requests each at once).
    """
    body = json.dumps({"events": [click("u-race", "i-1", event_id="evt-race")]})
    config = dynamodb_settings
    rules = Resources(config).event_rules
    # Each with a connection of its own, as separate Lambda instances have.
    instances = [EventLog(model, batches=BatchWriter(table_connection(model)))
                 for model in (event_model(config.events_table, config.region, config.dynamodb_endpoint_url)
                               for _ in range(4))]

    def parse(raw):
        return parse_event_batch(raw, rules, datetime.now(timezone.utc))

    for n, log in enumerate(instances):  # warm: connections open, as in instances that served before
        record_events(log, parse(json.dumps({"events": [click("u-warm", event_id=f"w{n}")]})))
    start = threading.Barrier(20)

    def one_request(i):
        events = parse(body)
        start.wait()
        return record_events(instances[i % 4], events)

    with ThreadPoolExecutor(max_workers=20) as pool:
        receipts = list(pool.map(one_request, range(20)))

    assert all(r["accepted"] + r["duplicates"] == 1 and r["event_ids"] == ["evt-race"] for r in receipts)
    assert sum(r["accepted"] for r in receipts) >= 1
    assert [r.event_id for r in stored_events(config, "u-race")] == ["evt-race"]
    status, receipt = post_events(events_client, body)
    assert status == 202 and (receipt["accepted"], receipt["duplicates"]) == (0, 1)


# --- refusing ---------------------------------------------------------------------------------


def _invalid_cases():
    now = time.time()
    naive = datetime.now(timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds")
    valid = click("u-ok", "i-ok", event_id="ok-1")

    def second(**fields):  # a valid event, then the bad one
        return {"events": [valid, {**click("u-bad", "i-bad"), **fields}]}

    def without(name):
        return {"events": [valid, {k: v for k, v in click("u-bad", "i-bad").items() if k != name}]}

    return [
        ("missing user_id", without("user_id"), "events[1].user_id"),
        ("missing item_id", without("item_id"), "events[1].item_id"),
        ("missing event_type", without("event_type"), "events[1].event_type"),
        ("unknown event type", second(event_type="teleport"), "events[1].event_type"),
        ("unknown field", second(colour="red"), "events[1].colour"),
        ("257-char id", second(user_id="u" * 257), "events[1].user_id"),
        ("control character", second(item_id="i\n1"), "events[1].item_id"),
        ("empty id", second(event_id=""), "events[1].event_id"),
        ("non-string id", second(item_id=42), "events[1].item_id"),
        ("10 minutes ahead", second(timestamp=now + 600), "events[1].timestamp"),
        ("2 years old", second(timestamp=now - 2 * 365 * 86400), "events[1].timestamp"),
        ("naive ISO", second(timestamp=naive), "events[1].timestamp"),
        ("malformed timestamp", second(timestamp="yesterday"), "events[1].timestamp"),
        ("bool value", second(value=True), "events[1].value"),
        ("string value", second(value="3"), "events[1].value"),
        ("NaN value", json.dumps(second(value=float("nan"))), "events[1].value"),  # json writes NaN
        ("Infinity value", json.dumps(second(value=float("inf"))), "events[1].value"),
        ("huge value", second(value=1e12), "events[1].value"),
        ("unknown source", second(source="pigeon"), "events[1].source"),
        ("events not a list", {"events": valid}, "events"),
        ("no events", {"events": []}, "events"),
        ("entry not an object", {"events": [valid, "click"]}, "events[1]"),
        ("unknown top-level field", {"events": [valid], "dry_run": True}, "dry_run"),
        ("malformed JSON", '{"events": [' + json.dumps(valid), "body"),
        ("101 events", {"events": [valid] + [click(event_id=f"e{i}") for i in range(100)]}, "events"),
    ]


def test_invalid_batches_are_refused_whole(events_client, dynamodb_settings):
    """400 naming events[i].field (413 past 100 events), and nothing of the batch stored."""
    wrong = []
    for name, body, field in _invalid_cases():
        status, answer = post_events(events_client, body)
        got = (status, answer.get("error"), answer.get("field"), bool(answer.get("message")))
        expected = (413, "payload_too_large") if name == "101 events" else (400, "invalid_request")
        if got != (*expected, field, True):
            wrong.append((name, got))
        if all_items(dynamodb_settings):
            wrong.append((name, "something of the batch was stored"))
    assert wrong == []


# Regression: a list reached `x in frozenset`, whose TypeError escaped as a 500.
def test_unhashable_event_type_or_source_is_400(api_client):
    for name in ("event_type", "source"):
        status, answer = post_events(api_client, {"events": [{**click(), name: ["click"]}]})
        assert status == 400, name
        assert (answer["error"], answer["field"]) == ("invalid_request", f"events[0].{name}")


# Regression: math.isfinite() of a huge JSON integer raised OverflowError, a 500.
def test_integer_beyond_float_range_is_400(api_client):
    for name in ("value", "timestamp"):
        body = '{"events": [{"user_id": "u", "item_id": "i", "event_type": "click", "%s": 1%s}]}' % (name, "0" * 400)
        status, answer = post_events(api_client, body)
        assert status == 400, name
        assert (answer["error"], answer["field"]) == ("invalid_request", f"events[0].{name}")


# --- DynamoDB failing part of a batch ---------------------------------------------------------


def use_flaky_table(monkeypatch, settings, **faults):
    """Serve the routes from an EventLog on the real table whose batch calls go through FlakyTable."""
    model = table_of(settings)
    flaky = FlakyTable(table_connection(model), **faults)
    log = EventLog(model, batches=BatchWriter(flaky, attempts=4, sleep=lambda seconds: None))
    monkeypatch.setattr(Resources, "event_log", property(lambda self: log))
    reset_app_resources()
    return flaky


def thirty_events():
    return [click(f"u-{i % 3}", f"i-{i}", event_id=f"e-{i:02d}") for i in range(30)]  # two write batches


def test_partial_failures_that_recover_store_everything(events_client, dynamodb_settings, monkeypatch):
    events = thirty_events()
    assert post_events(events_client, {"events": events[:10]})[0] == 202  # healthy: 10 already stored
    flaky = use_flaky_table(monkeypatch, dynamodb_settings, writes=["half", "throttle", "half"],
                            reads=["throttle", "half", "half"])

    status, receipt = post_events(events_client, {"events": events})

    assert status == 202, receipt
    assert (receipt["accepted"], receipt["duplicates"]) == (20, 10)
    assert flaky.faults_left == 0  # every injected fault was met and retried
    assert sorted(item.event_id for item in all_items(dynamodb_settings)) == [e["event_id"] for e in events]


def test_events_left_unprocessed_after_every_retry_are_listed_exactly(events_client, dynamodb_settings, monkeypatch):
    events = thirty_events()
    use_flaky_table(monkeypatch, dynamodb_settings, writes=["throttle"], never_store={"e-03", "e-27"})

    status, body = post_events(events_client, {"events": events})

    assert (status, body["error"]) == (503, "events_not_stored")
    assert body["not_stored"] == [{"index": 3, "event_id": "e-03"}, {"index": 27, "event_id": "e-27"}]
    stored = {item.event_id for item in all_items(dynamodb_settings)}
    assert stored == {e["event_id"] for e in events} - {"e-03", "e-27"}
    assert (body["accepted"], body["duplicates"]) == (len(stored), 0)

    monkeypatch.undo()  # DynamoDB is well again: resending the batch stores just the missing two
    reset_app_resources()
    status, receipt = post_events(events_client, {"events": events})
    assert status == 202 and (receipt["accepted"], receipt["duplicates"]) == (2, 28)
    assert len(all_items(dynamodb_settings)) == 30


def test_nothing_stored_is_a_503_listing_every_event(events_client, dynamodb_settings, monkeypatch):
    events = [click("u-1", "i-1"), click("u-2", "i-2", event_id="mine")]
    for faults in ({"writes": ["throttle"] * 4}, {"reads": ["throttle"] * 4}):  # writes / duplicate check throttled
        use_flaky_table(monkeypatch, dynamodb_settings, **faults)
        status, body = post_events(events_client, {"events": events})
        assert (status, body["error"], body["accepted"]) == (503, "events_not_stored", 0), faults
        assert body["not_stored"] == [{"index": i, "event_id": e} for i, e in enumerate(body["event_ids"])]
        assert body["event_ids"][1] == "mine"
        assert all_items(dynamodb_settings) == []


# --- erasure ------------------------------------------------------------------------------------


def test_delete_user_erases_every_event_of_that_user_only(events_client, dynamodb_settings):
    events = [click("u-gone", f"i-{i}") for i in range(3)] + [click("u-stays", "i-0")]
    assert post_events(events_client, {"events": events})[0] == 202

    response = events_client.http.delete("/users/u-gone")

    receipt = response.json_body
    assert (response.status_code, receipt["user_id"], receipt["deleted_events"]) == (200, "u-gone", 3)
    assert datetime.fromisoformat(receipt["erased_at"]).tzinfo is not None
    assert stored_events(dynamodb_settings, "u-gone") == []
    assert [r.item_id for r in stored_events(dynamodb_settings, "u-stays")] == ["i-0"]
    again = events_client.http.delete("/users/u-gone")
    assert (again.status_code, again.json_body["deleted_events"]) == (200, 0)

    too_long = events_client.http.delete("/users/" + "u" * 257)
    assert (too_long.status_code, too_long.json_body["error"], too_long.json_body["field"]) == (
        400, "invalid_request", "user_id")


# --- what DynamoDB cannot store is bad input, refused before any write ------------------------

#: Values our checks once let through that DynamoDB refuses, so the batch they travelled in was
#: half stored and answered "503, resend" (field, bad value).
UNSTORABLE = [
    ("value", 1e-200),  # DynamoDB numbers are 0 or of magnitude 1E-130 to 9.99E+125
    ("event_id", "\U0001F600" * 256),  # 1,024 bytes: over the time index's sort key limit with its prefix
    ("user_id", "\ud800"),  # a lone surrogate cannot be written in UTF-8
    ("item_id", "i-\udfff"),
    ("session_id", "\ud800s"),
    ("event_id", "e-\ud83d"),
]


# Regression: a 30-event batch with one such event stored 25 and answered 503 "resend".
def test_a_batch_with_one_event_dynamodb_cannot_store_is_refused_whole_before_any_write(events_client,
                                                                                      dynamodb_settings):
    wrong = []
    for name, bad in UNSTORABLE:
        events = thirty_events()
        events[7] = {**events[7], name: bad}
        status, answer = post_events(events_client, {"events": events})
        got = (status, answer.get("error"), answer.get("field"))
        if got != (400, "invalid_request", f"events[7].{name}"):
            wrong.append((name, got))
        if all_items(dynamodb_settings):
            wrong.append((name, "something of the batch was stored"))
    assert wrong == []


# Regression: converting these to UTC overflowed the calendar, an OverflowError answered 500.
def test_a_timestamp_overflowing_the_calendar_once_in_utc_is_400(api_client):
    for timestamp in ("0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"):
        status, answer = post_events(api_client, {"events": [click(timestamp=timestamp)]})
        assert (status, answer["error"], answer["field"]) == (400, "invalid_request", "events[0].timestamp"), timestamp


# Regression: "u0 " was stored as another user than "u0", and an id could hide characters.
def test_ids_are_stored_in_nfc_and_look_alikes_are_refused(events_client, dynamodb_settings):
    for field, bad in (("user_id", "u0 "), ("user_id", "\tu0"), ("item_id", "i\u200b1"), ("item_id", "\u202ei1"),
                       ("event_id", "\ufeffe1"), ("session_id", "s\u00a0"), ("item_id", "i%201")):
        status, answer = post_events(events_client, {"events": [click(**{field: bad})]})
        assert (status, answer.get("field")) == (400, f"events[0].{field}"), (field, bad)
    assert all_items(dynamodb_settings) == []

    decomposed = "Jose\u0301"  # what some keyboards send for "José"
    status, receipt = post_events(events_client, {"events": [click(decomposed, decomposed, event_id=decomposed)]})
    assert (status, receipt["event_ids"]) == (202, ["Jos\u00e9"])
    [stored] = stored_events(dynamodb_settings, "Jos\u00e9")
    assert (stored.user_id, stored.item_id, stored.event_id) == ("Jos\u00e9",) * 3
