"""A whole audience as CSV parts in S3 (moto): order, cuts, engaged and erased users, the manifest.

Tiny model (tests.support.tiny_artifact): users u0 = (1,0) saw i3; u1 = (0,1); u2 = (1,1) saw i0 and i2.
Audience of i1 = (0,1): u1 1, u2 1, u0 0, nobody engaged. Of i3 = (2,0): u0 2 (engaged), u2 2, u1 0.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.exports import ExportFolder
from chalicelib.insights.audience_export import audience_order, export_audience
from chalicelib.insights.audiences import item_target
from chalicelib.serving.recommender import Recommender


@pytest.fixture
def folder(resources):
    return ExportFolder(resources.s3, resources.settings.model_bucket, "audiences/v1")


@pytest.fixture
def model(make_tiny_artifact):
    return Recommender(replace(make_tiny_artifact(), version="20260101T000000Z-abc123"))


def read(resources, key: str) -> bytes:
    return resources.s3.get_object(Bucket=resources.settings.model_bucket, Key=key)["Body"].read()


def rows_of(resources, summary) -> list[list[list[str]]]:
    """Each part's CSV rows, header included."""
    return [list(csv.reader(io.StringIO(read(resources, address.split("/", 3)[3]).decode())))
            for address in summary.parts]


def export(model, folder, item_id, **options):
    return export_audience(model.artifact, item_target(model, item_id), {"item_id": item_id}, folder, **options)


def test_every_user_lands_best_first_a_part_a_chunk_then_the_manifest(resources, model, folder):
    summary = export(model, folder, "i1", chunk=2)

    assert rows_of(resources, summary) == [[["user_id", "score"], ["u1", "1.0"], ["u2", "1.0"]],
                                           [["user_id", "score"], ["u0", "0.0"]]]
    assert [address.rsplit("/", 1)[1] for address in summary.parts] == ["part-00000.csv", "part-00001.csv"]
    manifest = json.loads(read(resources, "audiences/v1/_manifest.json"))
    assert manifest["item_id"] == "i1" and manifest["model_version"] == "20260101T000000Z-abc123"
    assert (manifest["users"], manifest["engaged_users"], manifest["parts"]) == (3, 0, summary.parts)
    assert manifest["columns"] == ["user_id", "score"]


def test_engaged_users_are_left_out_unless_asked(resources, model, folder):
    assert rows_of(resources, export(model, folder, "i3"))[0][1:] == [["u2", "2.0"], ["u1", "0.0"]]
    assert rows_of(resources, export(model, folder, "i3", include_engaged=True))[0][1:] == [
        ["u0", "2.0"], ["u2", "2.0"], ["u1", "0.0"]]


def test_a_threshold_or_a_top_share_cuts_the_audience():
    scores = np.array([0.5, -np.inf, 2.0, 1.0, 1.0], dtype=np.float32)

    assert audience_order(scores).tolist() == [2, 3, 4, 0]  # never a -inf (engaged) user; ties to the lower row
    assert audience_order(scores, threshold=1.0).tolist() == [2, 3, 4]
    assert audience_order(scores, top_share=0.5).tolist() == [2, 3]
    assert audience_order(scores, top_share=0.3).tolist() == [2, 3]  # ceil(0.3 x 4 eligible)
    assert audience_order(scores, threshold=5.0).tolist() == []


def test_users_erased_since_training_are_left_out_a_chunk_at_a_time(resources, model, folder):
    asked: list[list[str]] = []

    def erasures(user_ids):
        asked.append(user_ids)
        return {"u2": datetime(2026, 2, 1, tzinfo=timezone.utc)} if "u2" in user_ids else {}

    summary = export(model, folder, "i1", chunk=2, erasures=erasures)

    assert [part[1:] for part in rows_of(resources, summary)] == [[["u1", "1.0"]], [["u0", "0.0"]]]
    assert (summary.users, summary.erased_users) == (2, 1)
    assert asked == [["u1", "u2"], ["u0"]]


def test_a_chunk_of_erased_users_only_writes_no_part(resources, model, folder):
    summary = export(model, folder, "i1", chunk=1, erasures=lambda ids: {
        user: datetime(2026, 2, 1, tzinfo=timezone.utc) for user in ids if user == "u2"})
    assert [part[1:] for part in rows_of(resources, summary)] == [[["u1", "1.0"]], [["u0", "0.0"]]]


def test_ids_with_commas_and_quotes_stay_one_field(resources, make_tiny_artifact, folder):
    model = Recommender(make_tiny_artifact(user_ids=['a,b', 'say "hi"', "plain"]))
    summary = export(model, folder, "i1")
    assert [row[0] for row in rows_of(resources, summary)[0][1:]] == ['say "hi"', "plain", "a,b"]


def test_the_event_logs_markers_leave_an_erased_user_out(dynamodb_resources, make_tiny_artifact):
    dynamodb_resources.event_log.erase("u1")
    model = Recommender(make_tiny_artifact())
    folder = ExportFolder(dynamodb_resources.s3, dynamodb_resources.settings.model_bucket, "erased")

    summary = export(model, folder, "i1", erasures=dynamodb_resources.event_log.erasures)

    assert [row[0] for row in rows_of(dynamodb_resources, summary)[0][1:]] == ["u2", "u0"]
