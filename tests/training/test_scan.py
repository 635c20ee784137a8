"""From the event log to training interactions: weights, erasures, and a scan of a real table."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np

from chalicelib.config import DEFAULT_EVENT_WEIGHTS
from chalicelib.eventlog.item import Event
from chalicelib.training.event_arrays import EventArrays, EventLogSnapshot, training_cutoff
from chalicelib.training.interactions import interaction_table
from chalicelib.training.sources.scan import read_event_log

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)


def ms(moment: datetime) -> np.datetime64:
    return np.datetime64(moment.astimezone(timezone.utc).replace(tzinfo=None), "ms")


def snapshot(rows: list[tuple[str, str, str, datetime]], erased: dict[str, datetime] | None = None) -> EventLogSnapshot:
    users, items, types, times = zip(*rows)
    events = EventArrays.from_strings(users, items, types, [ms(t) for t in times])
    return EventLogSnapshot(events=events, erased={user: ms(at) for user, at in (erased or {}).items()})


def cells(snap: EventLogSnapshot) -> dict[tuple[str, str], float]:
    """Non-zero (user, item) -> summed weight of the interaction matrix."""
    result = interaction_table(snap, DEFAULT_EVENT_WEIGHTS).to_matrix()
    coo = result.matrix.tocoo()
    return {(str(result.user_ids[r]), str(result.item_ids[c])): float(v) for r, c, v in zip(coo.row, coo.col, coo.data)}


def test_weights_add_up_per_user_and_item_and_cancelling_pairs_vanish():
    assert cells(snapshot([
        ("u1", "i1", "view", T0), ("u1", "i1", "click", T0),
        ("u1", "i2", "like", T0), ("u1", "i2", "dislike", T0 + timedelta(minutes=1)),
        ("u2", "i1", "dislike", T0),
        ("u2", "i3", "purchase", T0), ("u2", "i3", "teleport", T0),
        ("u3", "i4", "teleport", T0),
    ])) == {("u1", "i1"): 3.0, ("u2", "i1"): -4.0, ("u2", "i3"): 8.0}


def test_unknown_types_leave_no_trace_in_the_id_lists():
    result = interaction_table(
        snapshot([("u1", "i1", "view", T0), ("u9", "i9", "teleport", T0)]), DEFAULT_EVENT_WEIGHTS)
    assert list(result.user_ids) == ["u1"] and list(result.item_ids) == ["i1"]


def test_erased_users_lose_events_up_to_the_erasure_and_keep_later_ones():
    erased_at = T0 + timedelta(hours=1)
    assert cells(snapshot([
        ("gone", "i1", "purchase", T0),
        ("gone", "i2", "view", erased_at),
        ("gone", "i3", "click", erased_at + timedelta(milliseconds=1)),
        ("kept", "i1", "view", T0), ("kept", "i1", "view", erased_at + timedelta(hours=1)),
        ("zzz", "i2", "like", T0),
    ], erased={"gone": erased_at, "absent": erased_at})) == {
        ("gone", "i3"): 2.0, ("kept", "i1"): 2.0, ("zzz", "i2"): 4.0,
    }


def test_without_a_scan_time_the_cutoff_is_the_latest_event_time_or_none_when_empty():
    snap = snapshot([("u1", "i1", "view", T0 + timedelta(milliseconds=250)), ("u2", "i1", "view", T0)])
    assert training_cutoff(snap) == T0 + timedelta(milliseconds=250)
    empty = EventLogSnapshot(events=EventArrays.from_strings([], [], [], []), erased={})
    assert training_cutoff(empty) is None


def test_read_event_log_separates_events_from_erasure_markers(dynamodb_resources):
    model, log = dynamodb_resources.scan_table, dynamodb_resources.event_log

    def event(user, item, event_type, at, event_id):
        return Event(user_id=user, item_id=item, event_type=event_type, event_id=event_id, timestamp=at)

    log.write([event("gone", "i1", "view", T0, "g1")])
    receipt = log.erase("gone")
    late = receipt.erased_at + timedelta(seconds=1, microseconds=123456)
    log.write([
        event("gone", "i2", "click", late, "g2"),
        event("u1", "i1", "like", T0 + timedelta(milliseconds=789), "a"),
        replace(event("u1", "i3", "view", T0 - timedelta(days=3), "b"), value=2.5),
    ])
    pages: list[int] = []
    before = datetime.now(timezone.utc)
    snap = read_event_log(model, progress=pages.append)

    events = snap.events
    found = sorted(zip(events.user_ids[events.users].tolist(), events.item_ids[events.items].tolist(),
                       events.event_types[events.types].tolist(), events.times.tolist()))
    assert found == sorted([
        ("gone", "i2", "click", ms(late).tolist()),
        ("u1", "i1", "like", ms(T0 + timedelta(milliseconds=789)).tolist()),
        ("u1", "i3", "view", ms(T0 - timedelta(days=3)).tolist()),
    ])
    assert snap.erased == {"gone": ms(receipt.erased_at)}
    value_of = dict(zip(events.item_ids[events.items].tolist(), events.values.tolist()))
    assert value_of["i3"] == 2.5 and np.isnan(value_of["i1"]) and np.isnan(value_of["i2"])  # values travel too
    assert sum(pages) == 4  # three events and one marker
    # Everything logged before the scan began is in the snapshot: that is the cutoff.
    assert before <= training_cutoff(snap) <= datetime.now(timezone.utc)
    assert cells(snap) == {("gone", "i2"): 2.0, ("u1", "i1"): 4.0, ("u1", "i3"): 1.0}


def test_a_parallel_scan_reads_every_event_once(dynamodb_resources):
    model, log = dynamodb_resources.scan_table, dynamodb_resources.event_log
    written = [Event(user_id=f"u{n % 17}", item_id=f"i{n % 23}", event_type="view", event_id=f"e{n}",
                     timestamp=T0 + timedelta(seconds=n)) for n in range(300)]
    log.write(written)

    single = read_event_log(model, segments=1).events
    parallel = read_event_log(model, segments=3).events

    def decoded(events):
        return sorted(zip(events.user_ids[events.users].tolist(), events.item_ids[events.items].tolist(),
                          events.times.tolist()))

    assert len(parallel) == 300
    assert decoded(parallel) == decoded(single)
