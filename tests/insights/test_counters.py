"""The insight counters against both emulators: what ingest adds equals what a full scan computes.

Events go through ``EventLog.write`` (the path of ``POST /events`` and of imports), so only what the
log stores is counted; the scan side is :func:`chalicelib.insights.rebuild.scan_tallies`, and a
plain count in the test checks both.
"""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chalicelib.catalog.rules import check_catalog_item
from chalicelib.eventlog.item import Event
from chalicelib.insights import sketch
from chalicelib.insights.counters import CATEGORY, HORIZON, ITEM, day_bucket, hour_bucket
from chalicelib.insights.rebuild import rebuild, scan_tallies
from chalicelib.resources import Resources

NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)


def event(user, item, kind="view", minutes_ago=0, source=None, event_id=None):
    return Event(user, item, kind, event_id or uuid.uuid4().hex, NOW - timedelta(minutes=minutes_ago), source=source)


def counters_of(resources, bucket, prefix=ITEM):
    return {row.dimension: row for row in resources.counter_reader.read([bucket], prefix)[bucket]}


def test_stored_events_are_counted_per_item_category_source_and_bucket(dynamodb_resources):
    resources = dynamodb_resources
    resources.catalog.put([check_catalog_item({"title": "One", "categories": ["Comedy", "Drama"]}, item_id="i1")])
    log = resources.event_log
    log.write([event("u1", "i1", source="web"), event("u2", "i1", "click", source="app"), event("u1", "i1"),
               event("u1", "i2", "purchase", source="email", event_id="same")])
    log.write([event("u1", "i2", "purchase", source="email", event_id="same")])  # a duplicate: not counted
    log.write([event("u3", "i1", minutes_ago=int(HORIZON.total_seconds() // 60) + 90)])  # beyond the horizon

    for bucket in (hour_bucket(NOW), day_bucket(NOW)):
        items = counters_of(resources, bucket)
        assert items[ITEM + "i1"].counts == {"c_view": 2, "c_view@web": 1, "c_view@none": 1, "c_click": 1,
                                             "c_click@app": 1}
        assert items[ITEM + "i2"].counts == {"c_purchase": 1, "c_purchase@email": 1}
        assert sketch.estimate(items[ITEM + "i1"].registers) == 2
        categories = counters_of(resources, bucket, CATEGORY)
        assert set(categories) == {CATEGORY + "Comedy", CATEGORY + "Drama"}  # i2 is not in the catalog
        assert categories[CATEGORY + "Drama"].count("view") == 2


def test_a_failing_counter_update_never_fails_the_write(settings):
    from dataclasses import replace

    failures = []
    resources = Resources(replace(settings, insights_table="no-such-table"))
    resources.insight_counters._on_failure = failures.append

    receipt = resources.event_log.write([event("u1", "i1")])

    assert receipt.stored == [0] and failures == [2]  # the hour and the day item of i1


def test_counters_off_writes_none(settings):
    from dataclasses import replace

    resources = Resources(replace(settings, insights_counters="off"))
    resources.event_log.write([event("u1", "i1")])
    assert counters_of(resources, hour_bucket(NOW)) == {}


EVENTS = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]), st.sampled_from(["a", "b", "c"]),
                            st.sampled_from(["view", "click", "purchase"]), st.integers(0, 60 * 50),
                            st.sampled_from([None, "web", "app"]), st.integers(0, 20)),
                  min_size=1, max_size=20)


# Generation only: shrinking a failure through DynamoDB took minutes.
@settings(max_examples=6, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(rows=EVENTS, split=st.integers(1, 10))
def test_counters_equal_what_a_full_scan_computes(dynamodb_resources, rows, split):
    resources = dynamodb_resources
    run = uuid.uuid4().hex[:8]  # the tables are the test's: each example has its own items and category
    resources.catalog.put([check_catalog_item({"title": "A", "categories": [f"Even-{run}"]}, item_id=f"{run}-a")])
    events = [Event(user, f"{run}-{item}", kind, f"{run}-e{number}", NOW - timedelta(minutes=minutes), source=source)
              for user, item, kind, minutes, source, number in rows]  # a user's repeated event id is a duplicate
    for start in range(0, len(events), split):
        resources.event_log.write(events[start:start + split])

    expected = {key: tally for key, tally in scan_tallies(resources.scan_table, resources.item_categories, NOW).items()
                if run in key[1]}
    buckets = sorted({bucket for bucket, _ in expected})
    stored = {(bucket, row.dimension): row for prefix in (ITEM, CATEGORY)
              for bucket, found in resources.counter_reader.read(buckets, prefix).items() for row in found
              if run in row.dimension}
    assert set(stored) == set(expected)
    first_copies = {}
    for one in events:
        first_copies.setdefault((one.user_id, one.event_id), one)  # the log's key
    for (bucket, dimension), tally in expected.items():
        assert stored[bucket, dimension].counts == dict(tally.counts)
        registers = sketch.empty()
        sketch.add(registers, tally.users)
        assert np.array_equal(stored[bucket, dimension].registers, registers)
        if dimension.startswith(ITEM) and bucket.startswith("d#"):  # and a plain count agrees
            plain = Counter(one.event_type for one in first_copies.values()
                            if ITEM + one.item_id == dimension and day_bucket(one.timestamp) == bucket)
            assert dict(plain) == {name[2:]: count for name, count in tally.counts.items() if "@" not in name}


def test_the_rebuild_repairs_drift(resources):
    resources.event_log.write([event("u1", "i1"), event("u2", "i1", "click")])
    connection = resources.insight_counters._table
    resources.insight_counters.record([event("u9", "i1")])  # counted, never stored
    resources.insight_counters.record([event("u9", "zz")])

    written, deleted = rebuild(resources.scan_table, connection, resources.item_categories, NOW)

    assert (written, deleted) == (2, 2)  # i1 in the hour and the day; zz's two items deleted
    row = counters_of(resources, hour_bucket(NOW))[ITEM + "i1"]
    assert (row.count("view"), row.count("click"), sketch.estimate(row.registers)) == (1, 1, 2)
