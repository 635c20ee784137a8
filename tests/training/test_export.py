"""Retraining from a DynamoDB export to S3, built in moto as DynamoDB lays one out."""

from __future__ import annotations

import gzip
import json
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from chalicelib.errors import ExportUnreadable
from chalicelib.eventlog.item import Event, EventRecord
from chalicelib.training.sources import export as export_source
from chalicelib.training.sources.export import read_export

T0 = datetime(2026, 3, 1, 9, 30, 0, 250000, tzinfo=timezone.utc)
EXPORT_TIME = "2026-03-02T04:00:00.123Z"


def event_item(user: str, item: str, kind: str, at: datetime) -> dict:
    """An event exactly as the API stores it (pynamodb's attribute maps)."""
    event = Event(user_id=user, item_id=item, event_type=kind, event_id=f"{user}-{item}-{kind}", timestamp=at,
                  value=1.5, source="web")
    return EventRecord.of_event(event, received_at=at + timedelta(seconds=2)).serialize()


def erasure_item(user: str, at: datetime) -> dict:
    return EventRecord.erasure_marker(user, at).serialize()


def write_export(s3, bucket: str, prefix: str, export_id: str, files: list[list[dict]], **summary) -> str:
    """Write one export under ``prefix/AWSDynamoDB/export_id``; keys in the manifests include the prefix."""
    folder = f"{prefix}/AWSDynamoDB/{export_id}"
    s3.put_object(Bucket=bucket, Key=f"{folder}/_started", Body=b"")
    lines = []
    for number, items in enumerate(files):
        key = f"{folder}/data/file{number}.json.gz"
        body = "".join(json.dumps({"Item": item}) + "\n" for item in items)
        s3.put_object(Bucket=bucket, Key=key, Body=gzip.compress(body.encode()))
        lines.append(json.dumps({"itemCount": len(items), "md5Checksum": "x", "etag": "y", "dataFileS3Key": key}))
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-files.json", Body="\n".join(lines) + "\n")
    s3.put_object(Bucket=bucket, Key=f"{folder}/manifest-summary.json", Body=json.dumps({
        "version": "2023-08-01", "exportArn": f"arn:aws:dynamodb:us-east-1:123456789012:table/events/export/{export_id}",
        "exportTime": EXPORT_TIME, "s3Bucket": bucket, "s3Prefix": prefix,
        "manifestFilesS3Key": f"{folder}/manifest-files.json", "itemCount": sum(map(len, files)),
        "outputFormat": "DYNAMODB_JSON", "exportType": "FULL_EXPORT", **summary,
    }))
    return folder


def decoded(snapshot) -> list[tuple[str, str, str, np.datetime64]]:
    events = snapshot.events
    return sorted(zip(events.user_ids[events.users].tolist(), events.item_ids[events.items].tolist(),
                      events.event_types[events.types].tolist(), events.times.tolist()))


FILES = [
    [event_item("u1", "i1", "view", T0), erasure_item("u2", T0 + timedelta(hours=1)),
     event_item("u2", "i2", "purchase", T0 + timedelta(minutes=5))],
    [],  # DynamoDB writes an empty file for an empty partition
    [event_item("u1", "i3", "click", T0 + timedelta(days=1)), event_item("u3", "i1", "view", T0)],
]


def test_reads_events_erasures_and_export_time_in_chunks(resources, monkeypatch):
    s3 = resources.s3
    folder = write_export(s3, resources.settings.model_bucket, "exports/events", "01772416800123-ab12cd34", FILES)
    monkeypatch.setattr(export_source, "CHUNK_ITEMS", 2)
    counts: list[int] = []

    snapshot = read_export(s3, f"s3://{resources.settings.model_bucket}/{folder}", counts.append)

    assert decoded(snapshot) == sorted([
        ("u1", "i1", "view", datetime(2026, 3, 1, 9, 30, 0, 250000)),
        ("u2", "i2", "purchase", datetime(2026, 3, 1, 9, 35, 0, 250000)),
        ("u1", "i3", "click", datetime(2026, 3, 2, 9, 30, 0, 250000)),
        ("u3", "i1", "view", datetime(2026, 3, 1, 9, 30, 0, 250000)),
    ])
    assert snapshot.erased == {"u2": np.datetime64("2026-03-01T10:30:00.250", "ms")}
    assert snapshot.scanned_at == datetime(2026, 3, 2, 4, 0, 0, 123000, tzinfo=timezone.utc)
    assert counts == [2, 1, 2]  # chunks of two within each file, erasure marker included


def test_a_parent_prefix_reads_its_newest_completed_export(resources):
    s3, bucket = resources.s3, resources.settings.model_bucket
    write_export(s3, bucket, "exports", "01772416800999-old", [[event_item("old", "i9", "view", T0)]])
    time.sleep(1.1)  # LastModified has one-second resolution
    write_export(s3, bucket, "exports", "01772416800000-new", FILES)
    s3.put_object(Bucket=bucket, Key="exports/AWSDynamoDB/01772416900000-running/_started", Body=b"")

    for uri in (f"s3://{bucket}/exports", f"s3://{bucket}/exports/"):
        assert {user for user, *_ in decoded(read_export(s3, uri))} == {"u1", "u2", "u3"}


def test_a_copied_export_reads_its_own_data_files(resources):
    s3, bucket = resources.s3, resources.settings.model_bucket
    folder = write_export(s3, bucket, "exports", "01772416800123-ab12cd34", FILES)
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=folder)["Contents"]:
        s3.copy_object(Bucket=bucket, Key="copy/" + obj["Key"], CopySource={"Bucket": bucket, "Key": obj["Key"]})
    s3.delete_object(Bucket=bucket, Key=f"{folder}/data/file0.json.gz")  # the manifest still names the original

    assert len(read_export(s3, f"s3://{bucket}/copy/{folder}").events) == 4


@pytest.mark.parametrize("uri", ["bucket/exports", "https://bucket/exports", "s3:///exports", "s3://b/x?y=1"])
def test_a_malformed_uri_is_refused(resources, uri):
    with pytest.raises(ExportUnreadable, match="not an S3 URI"):
        read_export(resources.s3, uri)


def test_a_prefix_without_an_export_is_refused(resources):
    s3, bucket = resources.s3, resources.settings.model_bucket
    s3.put_object(Bucket=bucket, Key="exports/AWSDynamoDB/01772416900000-running/_started", Body=b"")
    with pytest.raises(ExportUnreadable, match="no DynamoDB export at s3://.*/exports"):
        read_export(s3, f"s3://{bucket}/exports")


def test_a_missing_summary_is_refused(resources):
    s3, bucket = resources.s3, resources.settings.model_bucket
    folder = write_export(s3, bucket, "exports", "01772416800123-ab12cd34", FILES)
    s3.delete_object(Bucket=bucket, Key=f"{folder}/manifest-summary.json")
    with pytest.raises(ExportUnreadable, match="missing export manifest"):
        read_export(s3, f"s3://{bucket}/{folder}")


@pytest.mark.parametrize("summary, message", [
    ({"outputFormat": "ION"}, "'ION' format; only DYNAMODB_JSON"),
    ({"exportType": "INCREMENTAL_EXPORT"}, "INCREMENTAL_EXPORT; only FULL_EXPORT"),
])
def test_ion_and_incremental_exports_are_refused(resources, summary, message):
    s3, bucket = resources.s3, resources.settings.model_bucket
    folder = write_export(s3, bucket, "exports", "01772416800123-ab12cd34", FILES, **summary)
    with pytest.raises(ExportUnreadable, match=message):
        read_export(s3, f"s3://{bucket}/{folder}")
