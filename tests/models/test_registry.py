"""Listing, deleting, pruning and rolling back model versions on moto."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.errors import ArtifactError
from chalicelib.models.artifact import serialize
from chalicelib.models.registry import ModelRegistry, VersionInfo
from tests.support import publish_versions
from tests.support import put_model_object as put


def keys(resources) -> set[str]:
    response = resources.s3.list_objects_v2(Bucket=resources.settings.model_bucket)
    return {obj["Key"] for obj in response.get("Contents", [])}


def test_list_versions_newest_first_with_live_flag_and_manifest_fields(model_registry, make_tiny_artifact):
    metrics = {"candidate": {"ndcg@10": 0.5, "map@10": 0.25}}
    old, new = publish_versions(model_registry, make_tiny_artifact, 2, metrics=metrics)
    model_registry.set_live(old)

    listed = model_registry.list_versions()
    assert [entry.version for entry in listed] == [new, old]
    assert [entry.live for entry in listed] == [False, True]
    entry = listed[1]
    assert entry == VersionInfo(
        version=old, live=True, created_at=entry.created_at, algorithm="test",
        training_cutoff="2026-01-01T00:00:00+00:00", metrics=metrics,
        counts={"users": 3, "items": 4, "interactions": 3}, forced=False, error=None,
    )
    assert entry.created_at and "T" in entry.created_at
    assert (entry.metric("ndcg@10"), entry.metric("map@10"), entry.metric("recall@10")) == (0.5, 0.25, None)


def test_list_versions_follows_pages_and_lists_broken_folders_with_an_error(model_registry, resources,
                                                                           make_tiny_artifact):
    versions = publish_versions(model_registry, make_tiny_artifact, 3)
    put(resources, "20000101T000000Z-aaaaaa/model.npz", b"orphan")  # no manifest
    put(resources, "20000101T000000Z-bbbbbb/manifest.json", b"{not json")
    put(resources, ".hidden/notes.txt", b"not a version folder")
    model_registry._LIST_PAGE_SIZE = 2  # several pages for 5 folders and latest.json

    listed = model_registry.list_versions()
    assert [entry.version for entry in listed] == [
        *reversed(versions), "20000101T000000Z-bbbbbb", "20000101T000000Z-aaaaaa"
    ]
    assert "not valid JSON" in listed[3].error and "no manifest.json" in listed[4].error
    assert listed[3].algorithm is None and listed[3].live is False and listed[3].metric("ndcg@10") is None
    assert all(entry.error is None for entry in listed[:3])


def test_empty_store_lists_nothing(model_registry):
    assert model_registry.list_versions() == []


def test_delete_version_removes_every_file_and_refuses_the_live_one(model_registry, resources, make_tiny_artifact):
    old, live = publish_versions(model_registry, make_tiny_artifact, 2)
    assert model_registry.put_file(old, "report.md", b"# report", "text/markdown") == f"models/{old}/report.md"
    model_registry._LIST_PAGE_SIZE = 2  # the three files of *old* span two pages

    model_registry.delete_version(old)
    assert not any(key.startswith(f"models/{old}/") for key in keys(resources))
    with pytest.raises(ArtifactError, match="is live"):
        model_registry.delete_version(live)
    with pytest.raises(ArtifactError, match="does not exist"):
        model_registry.delete_version(old)
    assert model_registry.load(live).version == live


def test_prune_keeps_the_newest_versions(model_registry, make_tiny_artifact):
    versions = publish_versions(model_registry, make_tiny_artifact, 4)
    assert model_registry.prune(2) == [versions[1], versions[0]]
    assert [entry.version for entry in model_registry.list_versions()] == [versions[3], versions[2]]
    assert model_registry.prune(2) == []


def test_prune_always_keeps_an_old_live_version(model_registry, make_tiny_artifact):
    versions = publish_versions(model_registry, make_tiny_artifact, 4)
    model_registry.rollback(to=versions[0])
    assert model_registry.prune(1) == [versions[2], versions[1]]
    assert [(e.version, e.live) for e in model_registry.list_versions()] == [(versions[3], False), (versions[0], True)]


def test_prune_refuses_to_keep_fewer_than_one(model_registry, make_tiny_artifact):
    publish_versions(model_registry, make_tiny_artifact, 2)
    for keep in (0, -1, 1.5, True):
        with pytest.raises(ArtifactError, match="keep must be"):
            model_registry.prune(keep)
    assert len(model_registry.list_versions()) == 2


def test_rollback_skips_a_corrupted_version(model_registry, resources, make_tiny_artifact):
    oldest, corrupted, live = publish_versions(model_registry, make_tiny_artifact, 3)
    put(resources, f"{corrupted}/model.npz", b"garbage")

    assert model_registry.rollback() == oldest
    assert model_registry.live_version() == oldest
    with pytest.raises(ArtifactError, match="no valid model version older"):
        model_registry.rollback()
    with pytest.raises(ArtifactError, match="sha256"):
        model_registry.rollback(to=corrupted)
    assert model_registry.rollback(to=live) == live
    assert model_registry.live_version() == live


def test_rollback_needs_an_older_version(model_registry, make_tiny_artifact):
    with pytest.raises(ArtifactError, match="no live version"):
        model_registry.rollback()
    (only,) = publish_versions(model_registry, make_tiny_artifact, 1)
    with pytest.raises(ArtifactError, match="no valid model version older"):
        model_registry.rollback()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        model_registry.rollback(to="20990101T000000Z-ffffff")
    assert model_registry.live_version() == only


def test_forced_flag_comes_from_the_manifest(model_registry, make_tiny_artifact):
    payload, manifest = serialize(make_tiny_artifact(), "20260101T000000Z-000001", "2026-01-01T00:00:00+00:00")
    model_registry.upload(payload, {**manifest, "forced": True})
    assert model_registry.list_versions()[0].forced is True


def test_put_file_rejects_bad_names(model_registry, resources, make_tiny_artifact):
    (version,) = publish_versions(model_registry, make_tiny_artifact, 1)
    for name in ["a/b.md", "model.npz", "manifest.json", "", "..", ".hidden", "../x"]:
        with pytest.raises(ArtifactError, match="invalid file name"):
            model_registry.put_file(version, name, b"x", "text/plain")
    assert keys(resources) == {f"models/{version}/model.npz", f"models/{version}/manifest.json", "models/latest.json"}


def test_put_file_needs_an_existing_version(model_registry):
    with pytest.raises(ArtifactError, match="no manifest.json"):
        model_registry.put_file("20990101T000000Z-ffffff", "report.md", b"x", "text/markdown")


def test_ensure_bucket_creates_it_once(resources):
    registry = ModelRegistry(resources.s3, f"{resources.settings.model_bucket}-new", "models")
    assert registry.ensure_bucket("us-east-1") is True
    assert registry.ensure_bucket("us-east-1") is False
    assert registry.live_version() is None  # the bucket answers, empty


# Regression: ids had whole seconds, so versions of the same second sorted by their random suffix.
def test_rollback_after_two_publishes_in_the_same_second(model_registry, make_tiny_artifact, monkeypatch):
    from chalicelib.models import artifact as artifact_module

    ticks = iter(range(100))

    class FrozenClock(datetime):
        """Always 12:00:00 of the same day, a millisecond later at each call."""

        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone.utc) + timedelta(milliseconds=next(ticks))

    suffixes = iter(["ffffff", "000000"])  # the random part happens to decrease
    monkeypatch.setattr(artifact_module, "datetime", FrozenClock)
    monkeypatch.setattr(artifact_module.secrets, "token_hex", lambda n: next(suffixes))
    first = model_registry.publish(make_tiny_artifact())
    second = model_registry.publish(make_tiny_artifact())
    assert model_registry.live_version() == second

    assert model_registry.rollback() == first
