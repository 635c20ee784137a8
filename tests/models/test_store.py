"""Reading and publishing models on the moto S3 server: the pointer only ever names complete versions."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.errors import ArtifactError
from chalicelib.models.artifact import check_version_id, serialize
from chalicelib.models.registry import ModelRegistry
from tests.support import RecordingS3

CREATED_AT = "2026-01-02T03:04:05+00:00"


@pytest.fixture
def artifact(make_tiny_artifact):
    return make_tiny_artifact(metrics={"ndcg_at_10": 0.25})


def bucket_keys(resources) -> set[str]:
    listing = resources.s3.list_objects_v2(Bucket=resources.settings.model_bucket)
    return {entry["Key"] for entry in listing.get("Contents", [])}


def test_empty_bucket_has_no_live_version(model_registry):
    assert model_registry.live_version() is None


def test_published_version_loads_back_equal_through_the_read_only_store(model_registry, resources, artifact):
    version = model_registry.publish(artifact)
    store = resources.model_store  # what serving holds: reads only
    assert store.live_version() == version
    loaded = store.load(version)
    for name, original in artifact.arrays().items():
        np.testing.assert_array_equal(getattr(loaded, name), original)


def test_pointer_moves_only_after_the_version_is_complete(resources, artifact):
    recorder = RecordingS3(resources.s3, resources.settings.model_bucket)
    store = ModelRegistry(recorder, resources.settings.model_bucket, resources.settings.model_prefix)
    hidden = store.publish(artifact, make_live=False)
    assert bucket_keys(resources) == {f"models/{hidden}/model.npz", f"models/{hidden}/manifest.json"}
    assert store.live_version() is None

    version = store.publish(artifact)
    npz, manifest = f"models/{version}/model.npz", f"models/{version}/manifest.json"
    assert [key for key, _ in recorder.puts[2:]] == [npz, manifest, "models/latest.json"]
    assert {npz, manifest} <= recorder.puts[-1][1]  # both existed when the pointer was written
    assert store.live_version() == version


def test_set_live_rolls_back_and_refuses_missing_versions(model_registry, make_tiny_artifact):
    first = model_registry.publish(make_tiny_artifact(item_popularity=np.array([1, 2, 3, 4])))
    second = model_registry.publish(make_tiny_artifact())
    assert model_registry.live_version() == second

    model_registry.set_live(first)
    assert model_registry.live_version() == first
    np.testing.assert_array_equal(model_registry.load(first).item_popularity, [1, 2, 3, 4])

    with pytest.raises(ArtifactError, match="no manifest.json"):
        model_registry.set_live("20990101T000000Z-ffffff")
    assert model_registry.live_version() == first


def test_overwritten_model_file_is_refused_on_load(model_registry, resources, artifact, make_tiny_artifact):
    version = model_registry.publish(artifact)
    other_payload, _ = serialize(make_tiny_artifact(item_popularity=np.ones(4)), version, CREATED_AT)
    resources.s3.put_object(Bucket=resources.settings.model_bucket, Key=f"models/{version}/model.npz",
                            Body=other_payload)
    with pytest.raises(ArtifactError, match="sha256"):
        model_registry.load(version)


@pytest.mark.parametrize("version", ["../x", "", "a/b", ".hidden"])
def test_unsafe_version_ids_are_refused(model_registry, version):
    with pytest.raises(ArtifactError, match="invalid model version id"):
        check_version_id(version)
    with pytest.raises(ArtifactError):
        model_registry.load(version)
