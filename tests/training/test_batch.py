"""Batch recommendations: the tiny model's answers by hand, parts and manifest in S3 (moto), erased users left out.

Tiny model (tests.support.tiny_artifact): u0 = (1,0) saw i3; u1 = (0,1); u2 = (1,1) saw i0 and i2.
Item factors i0..i3 = (1,0), (0,1), (1,1), (2,0). Top 2, seen items excluded, ties to the lower row:
u0: i0 1, i2 1 (i3 seen); u1: i1 1, i2 1; u2: i3 2, i1 1.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from chalicelib.exports import ExportFolder
from chalicelib.serving.recommender import Recommender
from chalicelib.training.batch import chunk_size, export_recommendations

EXPECTED = {
    "u0": [("i0", 1.0), ("i2", 1.0)],
    "u1": [("i1", 1.0), ("i2", 1.0)],
    "u2": [("i3", 2.0), ("i1", 1.0)],
}
CUTOFF = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def output(resources):
    resources.model_registry.ensure_bucket(resources.settings.region)
    return ExportFolder(resources.s3, resources.settings.model_bucket, "campaigns/v1")


def read_lines(resources, summary) -> dict[str, dict]:
    lines = {}
    for address in summary.parts:
        key = address.split("/", 3)[3]
        body = resources.s3.get_object(Bucket=resources.settings.model_bucket, Key=key)["Body"].read()
        for line in body.decode().splitlines():
            entry = json.loads(line)
            lines[entry["user_id"]] = entry
    return lines


def ranked(entry: dict) -> list[tuple[str, float]]:
    return [(item["item_id"], item["score"]) for item in entry["items"]]


def test_every_known_user_gets_the_answer_the_api_gives(resources, output, make_tiny_artifact):
    artifact = replace(make_tiny_artifact(), version="20260101T000000Z-abc123")
    summary = export_recommendations(artifact, output, n=2, chunk=2)

    lines = read_lines(resources, summary)
    assert {user: ranked(entry) for user, entry in lines.items()} == EXPECTED
    assert {entry["model_version"] for entry in lines.values()} == {"20260101T000000Z-abc123"}
    # The same ranking as the route's model-only answer for a known user.
    model = Recommender(artifact)
    for user, entry in lines.items():
        answer = model.recommend(model.profile_for_user(user), 2)
        assert ranked(entry) == list(zip(answer.item_ids, answer.scores, strict=True))
    # Two users a chunk: two parts, then the manifest naming them.
    assert [address.rsplit("/", 1)[1] for address in summary.parts] == ["part-00000.jsonl", "part-00001.jsonl"]
    manifest = json.loads(resources.s3.get_object(Bucket=resources.settings.model_bucket,
                                                  Key="campaigns/v1/_manifest.json")["Body"].read())
    assert (manifest["users"], manifest["n"], manifest["parts"]) == (3, 2, summary.parts)


def test_a_list_of_users_keeps_its_known_users_and_counts_the_others(resources, output, make_tiny_artifact):
    summary = export_recommendations(make_tiny_artifact(), output, n=1, user_ids=["u2", "stranger", "u0"])

    assert {user: ranked(entry) for user, entry in read_lines(resources, summary).items()} == {
        "u2": [("i3", 2.0)], "u0": [("i0", 1.0)]}
    assert (summary.users, summary.unknown_users) == (2, 1)


def test_users_erased_since_training_are_left_out(resources, output, make_tiny_artifact):
    erased = {"u1": datetime(2026, 2, 1, tzinfo=timezone.utc),  # after the model's cutoff: still in the model
              "u2": datetime(2025, 12, 1, tzinfo=timezone.utc)}  # before it: the model knows only what came after
    asked: list[list[str]] = []

    def erasures(user_ids):
        asked.append(user_ids)
        return {user: erased[user] for user in user_ids if user in erased}

    summary = export_recommendations(make_tiny_artifact(), output, n=2, chunk=2, erasures=erasures)

    assert sorted(read_lines(resources, summary)) == ["u0", "u2"]
    assert (summary.users, summary.erased_users) == (2, 1)
    assert asked == [["u0", "u1"], ["u2"]]  # one read a chunk


def test_the_event_logs_erasure_markers_leave_a_user_out(dynamodb_resources, make_tiny_artifact):
    dynamodb_resources.provision()
    receipt = dynamodb_resources.event_log.erase("u1")
    output = ExportFolder(dynamodb_resources.s3, dynamodb_resources.settings.model_bucket, "erased")
    artifact = make_tiny_artifact(training_cutoff=CUTOFF.isoformat())

    assert dynamodb_resources.event_log.erasures(["u0", "u1"]) == {"u1": receipt.erased_at}
    summary = export_recommendations(artifact, output, n=2, erasures=dynamodb_resources.event_log.erasures)
    assert sorted(read_lines(dynamodb_resources, summary)) == ["u0", "u2"]


def test_a_chunk_holds_at_most_the_score_budget():
    assert chunk_size(100_000) == 160  # 16 million float32 scores: 64 MB
    assert chunk_size(1_000_000, score_budget=10_000_000) == 10
    assert chunk_size(200_000_000) == 1  # never zero users
