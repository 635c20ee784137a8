"""From events to one weighted interaction per (user, item): weights, sums, erasure, decay."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.eventlog.item import time_key
from chalicelib.eventlog.weighting import EventWeighting, ValueTransform
from chalicelib.training.event_arrays import EventArrays, EventCollector, EventLogSnapshot
from chalicelib.training.interactions import interaction_table

WEIGHTS = {"view": 1.0, "click": 2.0, "like": 4.0, "dislike": -4.0}
DAY0 = np.datetime64("2026-03-01T00:00:00", "ms")


def day(number: float) -> np.datetime64:
    return DAY0 + np.timedelta64(int(number * 86_400_000), "ms")


def snapshot(events: list[tuple[str, str, str, float]], erased: dict[str, float] | None = None) -> EventLogSnapshot:
    """A snapshot of (user, item, type, day) events; *erased* maps user -> day of erasure."""
    users, items, types, days = zip(*events, strict=True)
    arrays = EventArrays.from_strings(users, items, types, [day(d) for d in days])
    return EventLogSnapshot(events=arrays, erased={user: day(d) for user, d in (erased or {}).items()})


def values(table) -> dict[tuple[str, str], float]:
    return {
        (str(table.user_ids[u]), str(table.item_ids[i])): float(v)
        for u, i, v in zip(table.users, table.items, table.values)
    }


def last_times(table) -> dict[tuple[str, str], np.datetime64]:
    return {
        (str(table.user_ids[u]), str(table.item_ids[i])): t
        for u, i, t in zip(table.users, table.items, table.last_times)
    }


def test_each_event_counts_its_types_weight_and_repeats_are_summed():
    table = interaction_table(snapshot([
        ("ann", "i1", "view", 1),
        ("ann", "i2", "click", 2),
        ("ann", "i3", "view", 1), ("ann", "i3", "view", 3), ("ann", "i3", "click", 2),  # 1 + 1 + 2
        ("bob", "i1", "like", 1),
    ]), WEIGHTS)

    assert values(table) == {("ann", "i1"): 1.0, ("ann", "i2"): 2.0, ("ann", "i3"): 4.0, ("bob", "i1"): 4.0}
    assert len(table) == 4


def test_values_scale_the_weights_of_the_types_configured_for_it():
    weighting = EventWeighting({"play": 1.0, "like": 4.0},
                               {"play": ValueTransform("log1p", cap=15)})
    events = [("ann", "i1", "play", 1), ("ann", "i1", "play", 2), ("ann", "i2", "play", 3), ("bob", "i1", "like", 1),
              ("bob", "i2", "play", 4)]
    users, items, types, days = zip(*events, strict=True)
    arrays = EventArrays.from_strings(users, items, types, [day(d) for d in days], values=[3, 1, 100, 9, None])

    table = interaction_table(EventLogSnapshot(events=arrays, erased={}), weighting)

    # log2(1 + 3) + log2(1 + 1) = 3; 100 capped at 15: log2(16) = 4; a like's value means nothing; no value: 1
    assert values(table) == {("ann", "i1"): 3.0, ("ann", "i2"): 4.0, ("bob", "i1"): 4.0, ("bob", "i2"): 1.0}
    assert values(interaction_table(EventLogSnapshot(events=arrays, erased={}), {"play": 1.0, "like": 4.0})) == {
        ("ann", "i1"): 2.0, ("ann", "i2"): 1.0, ("bob", "i1"): 4.0, ("bob", "i2"): 1.0}  # plain weights: counts


def test_like_then_dislike_cancels_and_a_lone_dislike_is_negative_feedback():
    table = interaction_table(snapshot([
        ("ann", "i1", "like", 1), ("ann", "i1", "dislike", 2),  # 4 - 4 = 0: no interaction at all
        ("ann", "i2", "dislike", 3),  # -4: kept as negative feedback
        ("ann", "i3", "view", 1), ("ann", "i3", "dislike", 2),  # 1 - 4 = -3
        ("ann", "i4", "click", 1),
    ]), WEIGHTS)

    assert values(table) == {("ann", "i2"): -4.0, ("ann", "i3"): -3.0, ("ann", "i4"): 2.0}
    assert "i1" not in table.item_ids  # its only interaction cancelled out


def test_unknown_event_types_are_left_out():
    table = interaction_table(snapshot([
        ("ann", "i1", "view", 1),
        ("ann", "i1", "share", 2),  # no weight: ignored, not 0 and not an error
        ("ann", "i9", "share", 2),  # i9 has only an unknown event
        ("dan", "i1", "share", 2),  # dan has only an unknown event
    ]), WEIGHTS)

    assert values(table) == {("ann", "i1"): 1.0}
    assert table.user_ids.tolist() == ["ann"] and table.item_ids.tolist() == ["i1"]


def test_users_and_items_without_interactions_are_dropped_from_the_ids():
    table = interaction_table(snapshot([
        ("ann", "i1", "view", 1), ("ann", "i3", "click", 1),
        ("cat", "i2", "like", 1), ("cat", "i2", "dislike", 2),  # cat's only pair cancels; i2 is nobody's
    ]), WEIGHTS)

    assert table.user_ids.tolist() == ["ann"]
    assert table.item_ids.tolist() == ["i1", "i3"]
    # Codes index the compacted ids, and the matrix has exactly their shape.
    assert table.to_matrix().matrix.toarray().tolist() == [[1.0, 2.0]]


# Regression: ids were numbered in the order the log was read, so two scans of one log (a parallel
# scan returns pages in any order) gave different matrices, and different fits for one seed.
def test_the_same_events_in_any_order_give_the_same_table():
    events = [("cat", "i2", "view", 1), ("ann", "i3", "click", 2), ("bob", "i1", "like", 3), ("ann", "i1", "view", 4)]

    def read_in(order):
        """Events coded the way a scan codes them: ids numbered as they are met."""
        collector = EventCollector()
        users, items, types, days = zip(*order, strict=True)
        collector.add(list(users), list(items), list(types),
                      [time_key(day(d).astype(datetime).replace(tzinfo=timezone.utc), "e") for d in days])
        return collector.finish(scanned_at=None)

    tables = [interaction_table(read_in(order), WEIGHTS) for order in (events, events[::-1], events[1:] + events[:1])]
    assert read_in(events).events.user_ids.tolist() == ["cat", "ann", "bob"]  # the codes do differ by order

    for table in tables:
        assert table.user_ids.tolist() == ["ann", "bob", "cat"] and table.item_ids.tolist() == ["i1", "i2", "i3"]
        assert (table.to_matrix().matrix != tables[0].to_matrix().matrix).nnz == 0


def test_an_erased_users_events_up_to_the_erasure_are_dropped_and_later_ones_kept():
    table = interaction_table(snapshot([
        ("eve", "i1", "click", 1),
        ("eve", "i2", "view", 2),  # exactly at the erasure time: dropped too
        ("eve", "i3", "like", 3),  # after the erasure: eve started afresh
        ("eve", "i1", "view", 4),  # after: counts alone (1), not on top of the erased click
        ("ann", "i2", "view", 1),  # another user on the same day is untouched
    ], erased={"eve": 2}), WEIGHTS)

    assert values(table) == {("eve", "i3"): 4.0, ("eve", "i1"): 1.0, ("ann", "i2"): 1.0}
    assert last_times(table)[("eve", "i1")] == day(4)


# Regression (reliability audit): an event received after an erasure but stamped before it was stored,
# then left out of training.
def test_an_erasure_is_judged_by_when_the_log_received_each_event():
    events = snapshot([("eve", "i1", "click", 1), ("eve", "i2", "like", 1), ("ann", "i1", "view", 1)],
                      erased={"eve": 2})
    received = np.array([day(1.5), day(3), np.datetime64("NaT")], dtype="datetime64[ms]")
    events = EventLogSnapshot(events=replace(events.events, received=received), erased=events.erased)

    # eve's like is stamped day 1 but arrived on day 3, after her erasure: new activity, kept.
    # ann's view has no receive time: its timestamp judges (and she was never erased).
    assert values(interaction_table(events, WEIGHTS)) == {("eve", "i2"): 4.0, ("ann", "i1"): 1.0}


def test_a_user_erased_after_all_their_events_is_unknown_to_the_model():
    table = interaction_table(snapshot([
        ("eve", "i1", "click", 1), ("eve", "i2", "view", 2), ("ann", "i1", "view", 1),
    ], erased={"eve": 5}), WEIGHTS)

    assert table.user_ids.tolist() == ["ann"]
    assert table.item_ids.tolist() == ["i1"]  # i2 was only eve's


def test_half_life_decay_halves_an_event_one_half_life_older():
    events = [
        ("ann", "a", "view", 0),  # 10 days before the latest event: 1 · 0.5
        ("ann", "a", "click", 10),  # the latest event: 2 · 1
        ("ann", "b", "view", 5),  # half a half-life old: 1 · 0.5 ** 0.5
        ("ann", "c", "dislike", 0),  # negative feedback decays too: -4 · 0.5
    ]

    table = interaction_table(snapshot(events), WEIGHTS, half_life_days=10)

    assert values(table) == pytest.approx({("ann", "a"): 2.5, ("ann", "b"): 0.5**0.5, ("ann", "c"): -2.0})


def test_half_life_decay_up_to_a_given_now():
    events = [("ann", "a", "view", 0), ("ann", "a", "click", 10)]

    # now = day 20: the view is two half-lives old (1 · 0.25), the click one (2 · 0.5) -> 1.25
    table = interaction_table(snapshot(events), WEIGHTS, half_life_days=10, now=day(20))

    assert values(table) == pytest.approx({("ann", "a"): 1.25})


def test_no_half_life_means_no_decay():
    events = [("ann", "a", "view", 0), ("ann", "a", "click", 300)]

    assert values(interaction_table(snapshot(events), WEIGHTS)) == {("ann", "a"): 3.0}
    assert values(interaction_table(snapshot(events), WEIGHTS, half_life_days=None)) == {("ann", "a"): 3.0}


def test_last_times_are_the_latest_event_of_each_pair():
    table = interaction_table(snapshot([
        ("ann", "a", "view", 3), ("ann", "a", "click", 7.5), ("ann", "a", "view", 1),
        ("ann", "b", "view", 2),
        ("bob", "a", "dislike", 9),
    ]), WEIGHTS)

    assert last_times(table) == {("ann", "a"): day(7.5), ("ann", "b"): day(2), ("bob", "a"): day(9)}
    assert table.last_times.dtype == np.dtype("datetime64[ms]")


def test_a_log_without_any_usable_event_gives_an_empty_table():
    table = interaction_table(snapshot([("ann", "a", "share", 1)]), WEIGHTS)

    assert len(table) == 0
    assert table.user_ids.size == 0 and table.item_ids.size == 0
