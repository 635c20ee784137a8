"""The insight counters against both emulators: what ingest adds equals what a full scan computes.

Events go through ``EventLog.write`` (the path of ``POST /events`` and of imports), so only what the
log stores is counted; the scan side is :func:`chalicelib.insights.rebuild.scan_tallies`, and a
plain count in the test checks both.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from pynamodb.attributes import NumberAttribute

from chalicelib.catalog.rules import check_catalog_item
from chalicelib.eventlog.item import Event
from chalicelib.insights import sketch
from chalicelib.insights.counters import CATEGORY, HORIZON, ITEM, Counts, counter_connection, day_bucket, hour_bucket
from chalicelib.insights.rebuild import rebuild, scan_tallies
from chalicelib.resources import Resources
from tests.conftest import with_counters


@pytest.fixture(scope="module", name="module_dynamodb_settings")
def counting_module_dynamodb_settings(module_dynamodb_settings):
    """The shared settings, counting at ingest (the suite's default is off)."""
    return with_counters(module_dynamodb_settings)


@pytest.fixture(name="settings")
def counting_settings(settings):
    """The test's settings, counting at ingest (the suite's default is off)."""
    return with_counters(settings)


NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)


def event(user, item, kind="view", minutes_ago=0, source=None, event_id=None):
    return Event(user, item, kind, event_id or uuid.uuid4().hex, NOW - timedelta(minutes=minutes_ago), source=source)


def counters_of(resources, bucket, prefix=ITEM):
    return {row.dimension: row for row in resources.insights.counter_reader.read([bucket], prefix)[bucket]}


@pytest.fixture(scope="module")
def module_resources(module_dynamodb_settings):
    """The module's tables' clients and stores, built once: a botocore client takes a tenth of a second or more."""
    return Resources(module_dynamodb_settings)


def fresh_run() -> str:
    """A prefix no other test (or example) uses: its item ids, users and categories in the shared tables."""
    return uuid.uuid4().hex[:8]


def test_stored_events_are_counted_per_item_category_source_and_bucket(module_resources):
    resources = module_resources
    run = fresh_run()
    i1, i2 = f"{run}-i1", f"{run}-i2"
    resources.catalog.put([check_catalog_item({"title": "One", "categories": [f"{run}-Comedy", f"{run}-Drama"]},
                                              item_id=i1)])
    log = resources.event_log
    log.write([event("u1", i1, source="web"), event("u2", i1, "click", source="app"), event("u1", i1),
               event("u1", i2, "purchase", source="email", event_id=f"{run}-same")])
    log.write([event("u1", i2, "purchase", source="email", event_id=f"{run}-same")])  # a duplicate: not counted
    log.write([event("u3", i1, minutes_ago=int(HORIZON.total_seconds() // 60) + 90)])  # beyond the horizon

    for bucket in (hour_bucket(NOW), day_bucket(NOW)):
        items = counters_of(resources, bucket)
        assert items[ITEM + i1].counts == {"c_view": 2, "c_view@web": 1, "c_view@none": 1, "c_click": 1,
                                           "c_click@app": 1}
        assert items[ITEM + i2].counts == {"c_purchase": 1, "c_purchase@email": 1}
        assert sketch.estimate(items[ITEM + i1].registers) == 2
        categories = {name: row for name, row in counters_of(resources, bucket, CATEGORY).items() if run in name}
        assert set(categories) == {f"{CATEGORY}{run}-Comedy", f"{CATEGORY}{run}-Drama"}  # i2 is not in the catalog
        assert categories[f"{CATEGORY}{run}-Drama"].count("view") == 2


def test_a_failing_counter_update_never_fails_the_write(module_dynamodb_settings):
    failures = []
    # One attempt: a missing table answers the same at every retry.
    resources = Resources(replace(module_dynamodb_settings, insights_table="no-such-table", event_write_attempts=1))
    resources.insights.counters._on_failure = failures.append

    receipt = resources.event_log.write([event("u1", f"{fresh_run()}-i1")])

    assert receipt.stored == [0] and failures == [2]  # the hour and the day item of i1


class SketchAlwaysTaken:
    """The counters' connection, where another writer changes an item's sketch just before each of ours."""

    def __init__(self, table):
        self._table = table

    def __getattr__(self, name):
        return getattr(self._table, name)

    def update_item(self, bucket, dimension, actions, condition=None, **options):
        if condition is not None:  # a sketch write: the other writer gets there first, every time
            self._table.update_item(bucket, dimension, actions=[NumberAttribute(attr_name="sketch_version").add(1)])
        return self._table.update_item(bucket, dimension, actions=actions, condition=condition, **options)


def test_a_sketch_lost_to_other_writers_still_counts_the_events_once(module_resources, caplog, monkeypatch):
    # Were it a failure, the stream consumer's batch would be delivered again and counted twice.
    writer = module_resources.insights.counters
    monkeypatch.setattr(writer, "_table", SketchAlwaysTaken(writer._table))  # the module's writer: put back after
    item = f"{fresh_run()}-i1"

    touched, failed = writer.record_batch([event("u1", item), event("u2", item, "click")])

    assert (touched, failed) == (2, 0)
    row = counters_of(module_resources, hour_bucket(NOW))[ITEM + item]
    assert row.counts == {"c_view": 1, "c_view@none": 1, "c_click": 1, "c_click@none": 1}
    assert sketch.estimate(row.registers) == 0  # the users are what is missed
    assert any("sketch kept changing" in record.getMessage() for record in caplog.records)


@pytest.mark.parametrize("mode", ["off", "stream"])
def test_counters_off_or_kept_by_the_stream_are_not_written_at_ingest(module_dynamodb_settings, mode):
    resources = Resources(replace(module_dynamodb_settings, insights_counters=mode))
    item = f"{fresh_run()}-i1"
    assert resources.event_log.write([event("u1", item)]).stored == [0]
    assert ITEM + item not in counters_of(resources, hour_bucket(NOW))


# Small event sets: every shape the tally distinguishes (users, items in and out of the catalog, types,
# sources and none, hour and day buckets over two days, repeated ids) fits in 8 events.
EVENTS = st.lists(st.tuples(st.sampled_from(["u1", "u2", "u3", "u4"]), st.sampled_from(["a", "b", "c"]),
                            st.sampled_from(["view", "click", "purchase"]), st.integers(0, 60 * 50),
                            st.sampled_from([None, "web", "app"]), st.integers(0, 8)),
                  min_size=1, max_size=8)


# Each event costs about a dozen DynamoDB calls on an emulator: 3 generated examples, derandomized (the same
# ones every run), no deadline (an emulator's pace is not the code's) and no shrinking (minutes through
# DynamoDB; a failure prints its example).
@settings(max_examples=3, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.too_slow])
@given(rows=EVENTS, split=st.integers(1, 10))
def test_counters_equal_what_a_full_scan_computes(module_resources, rows, split):
    resources = module_resources
    run = fresh_run()  # each example has its own items and category in the module's tables
    resources.catalog.put([check_catalog_item({"title": "A", "categories": [f"Even-{run}"]}, item_id=f"{run}-a")])
    events = [Event(user, f"{run}-{item}", kind, f"{run}-e{number}", NOW - timedelta(minutes=minutes), source=source)
              for user, item, kind, minutes, source, number in rows]  # a user's repeated event id is a duplicate
    for start in range(0, len(events), split):
        resources.event_log.write(events[start:start + split])

    expected = {key: tally for key, tally in scan_tallies(resources.scan_table, resources.insights.item_categories, NOW).items()
                if run in key[1]}
    # One Scan of the module's small counters table, not a Query per bucket (the reader's own test is above).
    stored = {(item["bucket"]["S"], item["dimension"]["S"]): Counts.from_raw(item)
              for item in counter_connection(resources.insights.counter_table).scan()["Items"] if run in item["dimension"]["S"]}
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
    connection = resources.insights.counters._table
    resources.insights.counters.record([event("u9", "i1")])  # counted, never stored
    resources.insights.counters.record([event("u9", "zz")])

    written, deleted = rebuild(resources.scan_table, connection, resources.insights.item_categories, NOW)

    assert (written, deleted) == (2, 2)  # i1 in the hour and the day; zz's two items deleted
    row = counters_of(resources, hour_bucket(NOW))[ITEM + "i1"]
    assert (row.count("view"), row.count("click"), sketch.estimate(row.registers)) == (1, 1, 2)
