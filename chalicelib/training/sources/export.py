"""Reading the event log from a DynamoDB "Export to S3" instead of scanning the table.

An export costs no read capacity, so large tables are cheaper to retrain from
one. Only **full** exports in **DynamoDB JSON** are supported: an incremental
export holds changes (``NewImage``/``OldImage``) rather than the table, and
an Ion export is not JSON.

Layout of a full export (DynamoDB developer guide, "DynamoDB table export
output format")::

    <prefix>/AWSDynamoDB/<ExportId>/manifest-summary.json   one JSON object
    <prefix>/AWSDynamoDB/<ExportId>/manifest-files.json     JSON lines, one per data file
    <prefix>/AWSDynamoDB/<ExportId>/data/<name>.json.gz     JSON lines: {"Item": {...}}
"""

from __future__ import annotations

import gzip
import json
import logging
from datetime import datetime, timezone
from typing import Any, Callable, Iterator
from urllib.parse import urlparse

from botocore.exceptions import ClientError

from chalicelib.errors import ExportUnreadable
from chalicelib.training.event_arrays import EventCollector, EventLogSnapshot

logger = logging.getLogger(__name__)

EXPORT_FOLDER = "AWSDynamoDB"
FILES_MANIFEST = "manifest-files.json"
SUMMARY_MANIFEST = "manifest-summary.json"
#: Items handed to the collector at once: bounds memory to one chunk of parsed JSON.
CHUNK_ITEMS = 5000


def read_export(
    s3_client: Any, s3_uri: str, progress: Callable[[int], None] = lambda n: None
) -> EventLogSnapshot:
    """Read a full DynamoDB JSON export of the event table into a snapshot.

    *s3_uri* is ``s3://bucket/prefix`` naming either the export folder itself
    (the one holding ``manifest-files.json``) or the export prefix given when
    the export was requested, under which exports land as
    ``AWSDynamoDB/<ExportId>/``. When that prefix holds several completed
    exports, the newest (by the ``LastModified`` of its ``manifest-files.json``)
    is read.

    Data files are streamed one line at a time and added in chunks of
    :data:`CHUNK_ITEMS`; *progress* gets the number of items of each chunk.
    The snapshot's ``scanned_at`` is the export's ``exportTime``: the table as
    it stood at that moment, so events logged later are left to serving.

    Raises
    ------
    ExportUnreadable
        For a malformed URI, no export found, a missing manifest or data
        file, or an export that is not a full DYNAMODB_JSON one.
    """
    bucket, prefix = _parse_uri(s3_uri)
    folder = _find_export_folder(s3_client, bucket, prefix)
    summary = _json(_get_object(s3_client, bucket, f"{folder}/{SUMMARY_MANIFEST}").read(), SUMMARY_MANIFEST)
    scanned_at = _check_summary(summary, f"s3://{bucket}/{folder}")
    collector = EventCollector()
    read = 0
    for data_key in _data_keys(s3_client, bucket, folder):
        for chunk in _chunks(_items(s3_client, bucket, data_key), CHUNK_ITEMS):
            count = collector.add_raw_items(chunk)
            read += count
            progress(count)
    expected = summary.get("itemCount")
    if isinstance(expected, int) and expected != read:
        # A partial copy of an export still parses: make it visible rather than silently train on part of the log.
        logger.warning("export s3://%s/%s: manifest says %d items, read %d", bucket, folder, expected, read)
    return collector.finish(scanned_at)


def _parse_uri(s3_uri: str) -> tuple[str, str]:
    parsed = urlparse(s3_uri)
    if parsed.scheme != "s3" or not parsed.netloc or parsed.query or parsed.fragment:
        raise ExportUnreadable(f"not an S3 URI of the form s3://bucket/prefix: {s3_uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def _last_modified(s3_client: Any, bucket: str, key: str) -> datetime | None:
    try:
        return s3_client.head_object(Bucket=bucket, Key=key)["LastModified"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            return None
        raise


def _find_export_folder(s3_client: Any, bucket: str, prefix: str) -> str:
    """The key prefix (no trailing slash) of the export folder *prefix* names."""
    if prefix and _last_modified(s3_client, bucket, _join(prefix, FILES_MANIFEST)) is not None:
        return prefix
    # DynamoDB writes manifest-files.json last, so a folder without one is an
    # export still running (or failed): only completed exports are candidates.
    root = _join(prefix, EXPORT_FOLDER) + "/"
    candidates: list[tuple[datetime, str]] = []
    for page in s3_client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=root, Delimiter="/"):
        for common in page.get("CommonPrefixes", []):
            folder = common["Prefix"].rstrip("/")
            modified = _last_modified(s3_client, bucket, f"{folder}/{FILES_MANIFEST}")
            if modified is not None:
                candidates.append((modified, folder))
    if not candidates:
        raise ExportUnreadable(
            f"no DynamoDB export at s3://{bucket}/{prefix}: neither {FILES_MANIFEST} there "
            f"nor {EXPORT_FOLDER}/<ExportId>/{FILES_MANIFEST} under it"
        )
    if len(candidates) > 1:
        logger.info("%d exports under s3://%s/%s, reading the newest", len(candidates), bucket, root)
    return max(candidates)[1]


def _get_object(s3_client: Any, bucket: str, key: str) -> Any:
    try:
        return s3_client.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise ExportUnreadable(f"missing export manifest or data file: s3://{bucket}/{key}") from exc
        raise


def _check_summary(summary: dict[str, Any], where: str) -> datetime:
    """Reject exports this reader cannot use; return the export time."""
    output_format = summary.get("outputFormat")
    if output_format != "DYNAMODB_JSON":
        raise ExportUnreadable(f"export {where} is in {output_format!r} format; only DYNAMODB_JSON can be read")
    # Exports made before incremental exports existed have no exportType: they are full.
    export_type = summary.get("exportType", "FULL_EXPORT")
    if export_type != "FULL_EXPORT":
        raise ExportUnreadable(f"export {where} is an {export_type}; only FULL_EXPORT holds the whole table")
    export_time = summary.get("exportTime")
    if not isinstance(export_time, str):
        raise ExportUnreadable(f"export {where} has no exportTime in its {SUMMARY_MANIFEST}")
    return datetime.fromisoformat(export_time.replace("Z", "+00:00")).astimezone(timezone.utc)


def _data_keys(s3_client: Any, bucket: str, folder: str) -> Iterator[str]:
    for line in _get_object(s3_client, bucket, f"{folder}/{FILES_MANIFEST}").iter_lines():
        if not line.strip():
            continue
        key = _json(line, FILES_MANIFEST, "dataFileS3Key")
        # Real manifests give bucket keys under the export folder. Anything else
        # (the documented example omits the prefix; a copied export keeps the
        # original keys) is taken as the same file name in this folder's data/.
        yield key if key.startswith(folder + "/") else f"{folder}/data/{key.rsplit('/', 1)[-1]}"


def _items(s3_client: Any, bucket: str, key: str) -> Iterator[dict[str, Any]]:
    body = _get_object(s3_client, bucket, key)
    try:
        # GzipFile reads the response stream as it goes: one file is never held whole.
        with gzip.GzipFile(fileobj=body) as lines:
            for line in lines:
                if line.strip():
                    yield _json(line, key, "Item")
    finally:
        body.close()


def _json(text: bytes | str, where: str, field: str | None = None) -> Any:
    """*text* decoded as JSON (its *field*, when given), or ExportUnreadable saying where it broke."""
    try:
        value = json.loads(text)
        return value[field] if field is not None else value
    except (ValueError, KeyError, TypeError) as exc:
        detail = f"no {field!r} in a line" if isinstance(exc, (KeyError, TypeError)) else f"not JSON: {exc}"
        raise ExportUnreadable(f"export file {where}: {detail}") from exc


def _chunks(items: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
