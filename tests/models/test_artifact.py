"""The model artifact format: a round trip keeps everything, malformed models are refused by name."""

from __future__ import annotations

import copy
import hashlib
import io

import numpy as np
import pytest

from chalicelib.errors import ArtifactError
from chalicelib.models.artifact import deserialize, serialize

VERSION = "20260101T000000Z-abc123"
CREATED_AT = "2026-01-02T03:04:05+00:00"


@pytest.fixture
def artifact(make_tiny_artifact):
    return make_tiny_artifact(metrics={"ndcg_at_10": 0.25})


@pytest.fixture
def good(artifact):
    """(payload, manifest) of the tiny artifact."""
    return serialize(artifact, VERSION, CREATED_AT)


def resigned(payload: bytes, manifest: dict, **changes) -> dict:
    """A copy of *manifest* with *changes* and a sha256 matching *payload*, so checks past the sha run."""
    manifest = copy.deepcopy(manifest)
    manifest.update(changes)
    manifest["sha256"] = hashlib.sha256(payload).hexdigest()
    return manifest


def saved(save, *args, **kwargs) -> bytes:
    """What numpy's *save* function (np.save or np.savez) writes, as bytes."""
    buffer = io.BytesIO()
    save(buffer, *args, **kwargs)
    return buffer.getvalue()


def test_round_trip_keeps_every_array_and_the_metadata(artifact, good):
    loaded = deserialize(*good)
    for name, original in artifact.arrays().items():
        assert getattr(loaded, name).dtype == original.dtype, name
        np.testing.assert_array_equal(getattr(loaded, name), original)
    assert (loaded.version, loaded.created_at) == (VERSION, CREATED_AT)
    assert loaded.algorithm == "test"
    assert loaded.hyperparameters == {"regularization": 0.1, "alpha": 1.0}
    assert loaded.training_cutoff == "2026-01-01T00:00:00+00:00"
    assert loaded.metrics == {"ndcg_at_10": 0.25}


def test_manifest_describes_the_model(good):
    payload, manifest = good
    assert manifest["version"] == VERSION and manifest["created_at"] == CREATED_AT
    assert manifest["algorithm"] == "test"
    assert manifest["hyperparameters"] == {"regularization": 0.1, "alpha": 1.0}
    assert manifest["factors"] == 2
    assert manifest["counts"] == {"users": 3, "items": 4, "interactions": 3}
    assert manifest["sha256"] == hashlib.sha256(payload).hexdigest()
    assert manifest["training_cutoff"] == "2026-01-01T00:00:00+00:00"
    assert manifest["metrics"] == {"ndcg_at_10": 0.25}


def test_flipped_byte_is_refused_by_sha256(good):
    payload, manifest = good
    corrupted = bytearray(payload)
    corrupted[len(corrupted) // 2] ^= 0x01
    with pytest.raises(ArtifactError, match="sha256"):
        deserialize(bytes(corrupted), manifest)


def test_wrong_sha256_in_manifest_is_refused(good):
    payload, manifest = good
    with pytest.raises(ArtifactError, match="sha256"):
        deserialize(payload, {**manifest, "sha256": "0" * 64})


NOT_NPZ_PAYLOADS = [
    pytest.param(lambda good: b"", id="empty"),
    # Regressions: non-zip bytes were blamed on unpickling; a truncated zip and a
    # single .npy escaped as BadZipFile / TypeError instead of ArtifactError.
    pytest.param(lambda good: b"this is not a zip archive", id="text"),
    pytest.param(lambda good: good[0][: len(good[0]) // 2], id="truncated-zip"),
    pytest.param(lambda good: saved(np.save, np.arange(3)), id="single-npy"),
]


@pytest.mark.parametrize("make_payload", NOT_NPZ_PAYLOADS)
def test_payload_that_is_not_an_npz_is_refused(good, make_payload):
    payload = make_payload(good)
    with pytest.raises(ArtifactError, match="not a readable npz"):
        deserialize(payload, resigned(payload, good[1]))


def _tamper(name, value):
    return lambda arrays: arrays.__setitem__(name, value)


ARRAY_TAMPERING = {
    "item_ids shorter": (_tamper("item_ids", np.array(["i0", "i1", "i2"])), "item_ids has length 3"),
    "user factor count": (_tamper("user_factors", np.zeros((3, 3), np.float32)), "user_factors has 3 factors"),
    "float64 factors": (_tamper("item_factors", np.zeros((4, 2))), "item_factors must be float32"),
    "object array": (_tamper("user_ids", np.array([{"a": 1}], dtype=object)), "pickle"),
    "missing array": (lambda arrays: arrays.pop("item_popularity"), "no array 'item_popularity'"),
    "nan factor": (_tamper("item_factors", np.array([[np.nan, 0]] * 4, np.float32)), "item_factors contains NaN"),
    "seen index out of range": (_tamper("seen_indices", np.array([3, 0, 4], np.int32)), r"seen_indices must lie in \[0, 4\)"),
    "duplicate item ids": (_tamper("item_ids", np.array(["i0", "i1", "i1", "i3"])), "item_ids contains duplicate"),
    "duplicate user ids": (_tamper("user_ids", np.array(["u0", "u0", "u2"])), "user_ids contains duplicate"),
}


@pytest.mark.parametrize("tamper, message", ARRAY_TAMPERING.values(), ids=ARRAY_TAMPERING.keys())
def test_inconsistent_arrays_are_refused(artifact, good, tamper, message):
    arrays = {name: array.copy() for name, array in artifact.arrays().items()}
    tamper(arrays)
    payload = saved(np.savez, **arrays)
    with pytest.raises(ArtifactError, match=message):
        deserialize(payload, resigned(payload, good[1]))


MANIFEST_TAMPERING = {
    "factors": ({"factors": 3}, "manifest says 3 factors"),
    "counts": ({"counts": {"users": 4, "items": 4, "interactions": 3}}, "counts users=4"),
    "format_version": ({"format_version": 2}, "format_version 2 is not supported"),
}


@pytest.mark.parametrize("changes, message", MANIFEST_TAMPERING.values(), ids=MANIFEST_TAMPERING.keys())
def test_manifest_disagreeing_with_the_arrays_is_refused(good, changes, message):
    payload, manifest = good
    with pytest.raises(ArtifactError, match=message):
        deserialize(payload, resigned(payload, manifest, **changes))


@pytest.mark.parametrize("overrides", [
    {"item_ids": ["i0", "i1", "i2"]},
    {"user_factors": np.zeros((3, 3))},
    {"seen_indices": np.array([3, 0, 9])},
    {"seen_indptr": np.array([0, 1, 1, 2])},  # ends at 2 but there are 3 indices
    {"user_ids": ["u0", "u0", "u2"]},
    {"item_popularity": np.array([1, np.nan, 1, 1])},
], ids=["short item ids", "factor count", "index range", "indptr end", "duplicate ids", "nan popularity"])
def test_make_artifact_refuses_inconsistent_inputs(make_tiny_artifact, overrides):
    with pytest.raises(ArtifactError):
        make_tiny_artifact(**overrides)


@pytest.mark.parametrize("hyperparameters, message", [
    ({"alpha": 1.0}, "regularization"),
    ({"regularization": 0.1}, "alpha"),
    ({"regularization": -0.1, "alpha": 1.0}, "regularization"),
    ({"regularization": 0.1, "alpha": 0}, "alpha"),
    ({"regularization": "0.1", "alpha": 1.0}, "regularization"),
    ({"regularization": 0.1, "alpha": float("nan")}, "alpha"),
    ({"regularization": True, "alpha": 1.0}, "regularization"),
])
def test_what_fold_in_needs_is_required_in_the_hyperparameters(make_tiny_artifact, good, hyperparameters, message):
    """Serving folds events in with the artifact's λ and alpha; without them it would have to guess."""
    with pytest.raises(ArtifactError, match=f"{message} .*fold-in needs it"):
        make_tiny_artifact(hyperparameters=hyperparameters)
    payload, manifest = good
    with pytest.raises(ArtifactError, match=f"{message} .*fold-in needs it"):
        deserialize(payload, resigned(payload, manifest, hyperparameters=hyperparameters))


def test_fold_in_hyperparameters_come_back_as_numbers(make_tiny_artifact):
    artifact = deserialize(*serialize(make_tiny_artifact(hyperparameters={"regularization": 0, "alpha": 2}),
                                      VERSION, CREATED_AT))
    assert (artifact.regularization, artifact.alpha) == (0.0, 2.0)
    assert artifact.hyperparameters == {"regularization": 0, "alpha": 2}
