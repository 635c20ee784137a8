"""The insight counters kept from the events table's stream (``INSIGHTS_COUNTERS=stream``).

The Lambda handler gets Lambda-shaped DynamoDB stream events built from items the event log really
stored (both emulators); on moto, which implements DynamoDB Streams, the records are the stream's
own, read with boto3's ``dynamodbstreams`` client, and the counters they leave equal a full scan's.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import boto3
import numpy as np
import pytest

from chalicelib.catalog.rules import check_catalog_item
from chalicelib.eventlog.item import Event, raw_key, table_connection
from chalicelib.insights import sketch
from chalicelib.insights.counters import CATEGORY, ITEM, day_bucket, hour_bucket
from chalicelib.insights.rebuild import scan_tallies
from chalicelib.resources import Resources, reset_app_resources
from tests.conftest import with_counters
from tests.support import write_stage_config


@pytest.fixture(name="settings")
def counting_settings(settings):
    """The test's settings, counting at ingest (the suite's default is off)."""
    return with_counters(settings)


@pytest.fixture(name="dynamodb_settings")
def counting_dynamodb_settings(dynamodb_settings):
    """The test's settings on each emulator, counting at ingest (the suite's default is off)."""
    return with_counters(dynamodb_settings)


NOW = datetime.now(timezone.utc).replace(minute=30, second=0, microsecond=0)
ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/events/stream/2026-01-01T00:00:00.000"


def event(user, item, kind="view", event_id=None, source=None):
    return Event(user, item, kind, event_id or uuid.uuid4().hex, NOW - timedelta(minutes=5), source=source)


def stream_record(name, item, number):
    """A record as Lambda delivers it (NEW_IMAGE view: a REMOVE carries the keys only)."""
    dynamodb = {"ApproximateCreationDateTime": NOW.timestamp(), "Keys": dict(zip(("user_id", "record_key"), (
        {"S": part} for part in raw_key(item)))), "SequenceNumber": str(number), "SizeBytes": 100,
        "StreamViewType": "NEW_IMAGE"}
    if name != "REMOVE":
        dynamodb["NewImage"] = item
    return {"eventID": str(number), "eventName": name, "eventVersion": "1.1", "eventSource": "aws:dynamodb",
            "awsRegion": "us-east-1", "dynamodb": dynamodb, "eventSourceARN": ARN}


def invoke(settings, tmp_path, *batches):
    """The stream consumer's Lambda handler, run by chalice's test client on each batch of records in turn."""
    from chalice.test import Client

    import app

    write_stage_config(tmp_path, "test", settings)
    reset_app_resources()
    try:
        with Client(app.app, stage_name="test", project_dir=str(tmp_path)) as client:
            answers = [client.lambda_.invoke("insight_counters", {"Records": records}).payload for records in batches]
    finally:
        reset_app_resources()
    return answers[0] if len(answers) == 1 else answers




def counters(resources, buckets, prefixes=(ITEM, CATEGORY)):
    return {(bucket, row.dimension): row for prefix in prefixes
            for bucket, found in resources.insights.counter_reader.read(buckets, prefix).items() for row in found}


def test_the_handler_counts_inserts_once_and_ignores_modify_remove_and_the_erasure_marker(dynamodb_settings, tmp_path):
    settings = replace(dynamodb_settings, insights_counters="stream")
    resources = Resources(settings)
    resources.catalog.put([check_catalog_item({"title": "One", "categories": ["Drama"]}, item_id="i1")])
    resources.event_log.write([event("u1", "i1", source="web"), event("u2", "i1", "click"), event("u1", "i2")])
    resources.event_log.erase("gone")  # leaves the erasure marker
    assert counters(resources, [hour_bucket(NOW)]) == {}  # stream mode: the write counted nothing
    items = sorted(table_connection(resources.event_table).scan()["Items"], key=raw_key)
    markers = [item for item in items if item["record_key"]["S"] == "erased"]
    events = [item for item in items if item not in markers]
    assert len(markers) == 1 and len(events) == 3

    records = ([stream_record("INSERT", item, n) for n, item in enumerate(events + markers)]
               + [stream_record("MODIFY", events[0], 10), stream_record("REMOVE", events[1], 11)])
    answer = invoke(settings, tmp_path, records)

    assert answer == {"records": 6, "events": 3, "counter_items": 6}  # i1, i2, Drama: an hour and a day each
    for bucket in (hour_bucket(NOW), day_bucket(NOW)):
        found = counters(resources, [bucket])
        assert found[bucket, ITEM + "i1"].counts == {"c_view": 1, "c_view@web": 1, "c_click": 1, "c_click@none": 1}
        assert found[bucket, ITEM + "i2"].counts == {"c_view": 1, "c_view@none": 1}
        assert found[bucket, CATEGORY + "Drama"].count("click") == 1
        assert sketch.estimate(found[bucket, ITEM + "i1"].registers) == 2


def test_outside_stream_mode_the_handler_leaves_the_batch_alone(settings, tmp_path):
    """In ingest mode the write already counted: counting the stream too would count twice."""
    resources = Resources(settings)
    resources.event_log.write([event("u1", "i1")])
    [item] = table_connection(resources.event_table).scan()["Items"]

    answer = invoke(settings, tmp_path, [stream_record("INSERT", item, 1)])

    assert answer == {"skipped": "INSIGHTS_COUNTERS is not stream"}
    assert counters(resources, [hour_bucket(NOW)], (ITEM,))[hour_bucket(NOW), ITEM + "i1"].count("view") == 1


def test_a_batch_whose_counters_cannot_be_updated_fails_so_lambda_retries_it(settings, tmp_path):
    from chalicelib.errors import InsightCountersNotUpdated

    resources = Resources(settings)
    resources.event_log.write([event("u1", "i1")])
    [item] = table_connection(resources.event_table).scan()["Items"]
    # One attempt: a missing table answers the same at every retry.
    broken = replace(settings, insights_counters="stream", insights_table="no-such-table", event_write_attempts=1)

    with pytest.raises(InsightCountersNotUpdated, match="2 of 2 insight counter items not updated"):
        invoke(broken, tmp_path, [stream_record("INSERT", item, 1)])


def stream_of(settings, table_name):
    """The events table's stream records, oldest first, as boto3's dynamodbstreams client reads them from moto."""
    options = {"region_name": settings.region, "endpoint_url": settings.dynamodb_endpoint_url}
    arn = boto3.client("dynamodb", **options).describe_table(TableName=table_name)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams", **options)
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            page = streams.get_records(ShardIterator=iterator, Limit=1000)
            records += page["Records"]
            iterator = page.get("NextShardIterator") if page["Records"] else None
    for record in records:  # as Lambda delivers them: the time in epoch seconds, the source named
        record["dynamodb"]["ApproximateCreationDateTime"] = record["dynamodb"]["ApproximateCreationDateTime"].timestamp()
        record["eventSourceARN"] = arn
    return records


def test_counters_from_the_tables_own_stream_equal_a_full_scan(settings, tmp_path):
    """moto only: dynalite has no DynamoDB Streams (its tables ignore StreamSpecification)."""
    settings = replace(settings, insights_counters="stream")
    resources = Resources(settings)
    boto3.client("dynamodb", region_name=settings.region, endpoint_url=settings.dynamodb_endpoint_url).update_table(
        TableName=settings.events_table, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"})
    resources.catalog.put([check_catalog_item({"title": "A", "categories": ["Comedy"]}, item_id="a")])
    log = resources.event_log
    log.write([event("u1", "a", source="web"), event("u2", "a", "click", event_id="twice"), event("u3", "b")])
    log.write([event("u2", "a", "click", event_id="twice"), event("u1", "b", "purchase", source="app")])  # a duplicate
    # Two copies racing past the duplicate check: the second put overwrites the first, a MODIFY.
    racing = event("u1", "a", "purchase", event_id="raced")
    log.write([racing])
    resources.event_table.of_event(racing, datetime.now(timezone.utc)).save()
    expected = scan_tallies(resources.scan_table, resources.insights.item_categories, NOW)
    log.erase("u3")  # the marker's INSERT and the event's REMOVE: counters do not go down

    records = stream_of(settings, settings.events_table)
    assert sorted({record["eventName"] for record in records}) == ["INSERT", "MODIFY", "REMOVE"]
    answers = invoke(settings, tmp_path, *(records[start:start + 4] for start in range(0, len(records), 4)))

    assert sum(answer["events"] for answer in answers) == 5
    stored = counters(resources, sorted({bucket for bucket, _ in expected}))
    assert set(stored) == set(expected)
    for key, tally in expected.items():
        assert stored[key].counts == dict(tally.counts)
        registers = sketch.empty()
        sketch.add(registers, tally.users)
        assert np.array_equal(stored[key].registers, registers)
