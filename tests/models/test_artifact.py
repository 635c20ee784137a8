"""The model artifact format: a round trip keeps everything, malformed models are refused by name."""

from __future__ import annotations

import copy
import hashlib
import io
from dataclasses import replace

import numpy as np
import pytest

from chalicelib.errors import ArtifactError
from chalicelib.models.artifact import deserialize, factor_gram, serialize, sorting_order
from tests.support import TINY_INDEX_ENTRY, with_tiny_index

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


def test_the_arrays_are_read_in_place_from_aligned_data(artifact, good):
    # Serving keeps the downloaded bytes and views its arrays in them: no copy, no second 263 MB at 1M items.
    payload, _ = good
    loaded = deserialize(*good)
    start = np.frombuffer(payload, np.uint8).ctypes.data
    for name in ("item_factors", "user_factors", "item_popularity", "seen_indptr", "seen_indices", "seen_values",
                 "item_id_order", "user_id_order", "item_gram"):
        array = getattr(loaded, name)
        assert np.shares_memory(array, np.frombuffer(payload, np.uint8)), name
        assert (array.ctypes.data - start) % 64 == 0, f"{name} starts at a multiple of 64 bytes in the file"
        assert not array.flags.writeable, name  # views of immutable bytes: a stray write fails loudly


def test_the_gram_matrix_is_stored_and_older_files_without_it_still_load(make_tiny_artifact, artifact, good):
    loaded = deserialize(*good)
    np.testing.assert_allclose(loaded.item_gram, artifact.item_factors.T.astype(np.float64) @ artifact.item_factors,
                               rtol=1e-6)
    # serialize writes the Gram of the factors it writes, whatever an artifact carried.
    stale = replace(artifact, item_gram=np.zeros((2, 2)))
    np.testing.assert_array_equal(deserialize(*serialize(stale, VERSION, CREATED_AT)).item_gram,
                                  factor_gram(artifact.item_factors))
    arrays = {name: array for name, array in artifact.arrays().items() if name != "item_gram"}
    payload = saved(np.savez, **arrays)  # np.savez: misaligned members, which are copied
    older = deserialize(payload, resigned(payload, good[1]))
    assert older.item_gram is None
    np.testing.assert_array_equal(older.item_factors, artifact.item_factors)
    assert older.item_factors.flags.aligned


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
    "order that does not sort": (_tamper("item_id_order", np.array([1, 0, 2, 3], np.int32)),
                                 "item_id_order does not sort them"),
    "order repeating a row": (_tamper("user_id_order", np.array([0, 1, 1], np.int32)), "user_id_order does not sort"),
    "order out of range": (_tamper("user_id_order", np.array([0, 1, 3], np.int32)),
                           r"user_id_order must lie in \[0, 3\)"),
    "order too short": (_tamper("item_id_order", np.array([0, 1, 2], np.int32)), "item_id_order has length 3"),
    "int64 order": (_tamper("item_id_order", np.arange(4)), "item_id_order must be int32"),
    "Gram of the wrong size": (_tamper("item_gram", np.eye(3)), r"item_gram must be \(2, 2\)"),
    "infinite Gram": (_tamper("item_gram", np.array([[np.inf, 0], [0, 1]])), "item_gram contains NaN or infinite"),
    "float32 Gram": (_tamper("item_gram", np.eye(2, dtype=np.float32)), "item_gram must be float64"),
    "duplicate ids and no stored order": (
        lambda arrays: (arrays.pop("item_id_order"), arrays.__setitem__("item_ids", np.array(["i3", "i1", "i0", "i1"]))),
        "item_ids contains duplicate"),
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


@pytest.mark.parametrize("conventions, message", [
    ({"confidence_offset": 2}, "confidence_offset must be 0 or 1"),
    ({"confidence_offset": True}, "confidence_offset must be 0 or 1"),
    ({"regularization_scaling": "users"}, "regularization_scaling must be one of none, interactions"),
    ({"activity_exponent": 1.5, "activity_reference": 4.0}, "activity_exponent must be a number from 0 to 1"),
    ({"activity_exponent": "0.3", "activity_reference": 4.0}, "activity_exponent must be a number from 0 to 1"),
    ({"activity_exponent": 0.3}, "activity_exponent must give activity_reference"),
    ({"activity_exponent": 0.3, "activity_reference": 0}, "activity_exponent must give activity_reference"),
])
def test_fold_in_conventions_serving_does_not_know_are_refused(make_tiny_artifact, good, conventions, message):
    """A model trained under another convention would be folded in wrongly: refuse it rather than guess."""
    hyperparameters = {"regularization": 0.1, "alpha": 1.0, **conventions}
    with pytest.raises(ArtifactError, match=message):
        make_tiny_artifact(hyperparameters=hyperparameters)
    payload, manifest = good
    with pytest.raises(ArtifactError, match=message):
        deserialize(payload, resigned(payload, manifest, hyperparameters=hyperparameters))


def test_fold_in_conventions_default_to_implicits_and_come_back_from_the_file(make_tiny_artifact):
    implicit = make_tiny_artifact(hyperparameters={"regularization": 0.1, "alpha": 2})
    assert implicit.fold_in_conventions == {"confidence_offset": 0.0, "scale_regularization": False}
    spark = deserialize(*serialize(make_tiny_artifact(hyperparameters={
        "regularization": 0.1, "alpha": 2, "confidence_offset": 1, "regularization_scaling": "interactions"}),
        VERSION, CREATED_AT))
    assert spark.fold_in_conventions == {"confidence_offset": 1.0, "scale_regularization": True}
    weighed = deserialize(*serialize(make_tiny_artifact(hyperparameters={
        "regularization": 0.1, "alpha": 2, "activity_exponent": 0.3, "activity_reference": 12.5}),
        VERSION, CREATED_AT))
    assert weighed.fold_in_conventions == {"confidence_offset": 0.0, "scale_regularization": False,
                                           "activity_exponent": 0.3, "activity_reference": 12.5}


# --- the id orders ------------------------------------------------------------------------------------------


def test_a_file_written_before_the_id_orders_loads_with_them_computed(make_tiny_artifact):
    artifact = make_tiny_artifact(item_ids=["i2", "i0", "i3", "i1"], user_ids=["u2", "u0", "u1"])
    arrays = {name: array for name, array in artifact.arrays().items()
              if name not in ("item_id_order", "user_id_order")}
    payload = saved(np.savez, **arrays)
    loaded = deserialize(payload, resigned(payload, serialize(artifact, VERSION, CREATED_AT)[1]))
    assert loaded.item_id_order.dtype == loaded.user_id_order.dtype == np.int32
    assert loaded.item_id_order.tolist() == [1, 3, 0, 2]  # i0, i1, i2, i3
    assert loaded.user_id_order.tolist() == [1, 2, 0]  # u0, u1, u2
    np.testing.assert_array_equal(loaded.item_ids, artifact.item_ids)


def test_make_artifact_stores_the_orders_that_sort_the_ids(make_tiny_artifact):
    artifact = make_tiny_artifact(item_ids=["b", "a", "ab", "B"], user_ids=["u10", "u2", "u1"])
    assert artifact.item_id_order.tolist() == [3, 1, 2, 0]  # "B" < "a" < "ab" < "b"
    assert artifact.user_id_order.tolist() == [2, 0, 1]
    loaded = deserialize(*serialize(artifact, VERSION, CREATED_AT))
    np.testing.assert_array_equal(loaded.item_id_order, artifact.item_id_order)


def test_make_artifact_refuses_duplicate_item_ids(make_tiny_artifact):
    with pytest.raises(ArtifactError, match="item_ids contains duplicate"):
        make_tiny_artifact(item_ids=["i3", "i0", "i3", "i1"])


# --- the approximate index ------------------------------------------------------------------------------------


@pytest.fixture
def indexed(artifact):
    """The tiny artifact with a hand-made approximate index (see tests.support.with_tiny_index)."""
    return with_tiny_index(artifact)


def test_round_trip_keeps_the_approximate_index_and_its_entry(indexed):
    payload, manifest = serialize(indexed, VERSION, CREATED_AT)
    assert manifest["approximate_index"] == TINY_INDEX_ENTRY
    loaded = deserialize(payload, manifest)
    for name in ("ivf_centroids", "ivf_offsets", "ivf_similar_centroids", "ivf_similar_offsets", "ivf_similar_rows"):
        assert getattr(loaded, name).dtype == getattr(indexed, name).dtype, name
        np.testing.assert_array_equal(getattr(loaded, name), getattr(indexed, name))
    assert loaded.approximate_index == TINY_INDEX_ENTRY


def test_a_model_without_an_index_has_none_in_its_manifest(good):
    assert good[1]["approximate_index"] is None
    loaded = deserialize(*good)
    assert loaded.ivf_centroids is None and loaded.approximate_index is None


INDEX_TAMPERING = {
    "similar rows missing": (lambda arrays: arrays.pop("ivf_similar_rows"),
                             "has ivf_similar_centroids without ivf_similar_rows"),
    "factor offsets missing": (lambda arrays: arrays.pop("ivf_offsets"), "has ivf_centroids without ivf_offsets"),
    "only the similar lists": (lambda arrays: (arrays.pop("ivf_centroids"), arrays.pop("ivf_offsets")),
                               r"has ivf_similar_\* arrays without ivf_centroids"),
    "offsets short of the items": (_tamper("ivf_offsets", np.array([0, 2, 3])), "ivf_offsets must .* end at"),
    "offsets decreasing": (_tamper("ivf_similar_offsets", np.array([0, 6, 4])),
                           "ivf_similar_offsets must .* never decrease"),
    "offsets of another list count": (_tamper("ivf_offsets", np.array([0, 1, 2, 4])), "ivf_offsets has length 4"),
    "centroids of another factor count": (_tamper("ivf_centroids", np.zeros((2, 3), np.float32)),
                                          "ivf_centroids must be"),
    "no lists": (_tamper("ivf_similar_centroids", np.zeros((0, 2), np.float32)), "ivf_similar_centroids must be"),
    "nan centroid": (_tamper("ivf_centroids", np.array([[np.nan, 0], [1, 1]], np.float32)), "contains NaN"),
    "similar row out of range": (_tamper("ivf_similar_rows", np.array([0, 3, 1, 4], np.int32)),
                                 r"ivf_similar_rows must lie in \[0, 4\)"),
    # A repeated row would answer the same item several times in one list of similar items.
    "similar row repeated": (_tamper("ivf_similar_rows", np.array([0, 3, 3, 3], np.int32)),
                             "ivf_similar_rows must list every item row once"),
}


@pytest.mark.parametrize("tamper, message", INDEX_TAMPERING.values(), ids=INDEX_TAMPERING.keys())
def test_an_inconsistent_approximate_index_is_refused(indexed, tamper, message):
    payload, manifest = serialize(indexed, VERSION, CREATED_AT)
    arrays = {name: array.copy() for name, array in indexed.arrays().items()}
    tamper(arrays)
    payload = saved(np.savez, **arrays)
    with pytest.raises(ArtifactError, match=message):
        deserialize(payload, resigned(payload, manifest))


@pytest.mark.parametrize("name", ["probes", "similar_probes"])
@pytest.mark.parametrize("value", [0, 3, -1, 1.0, "1", True, None])
def test_probes_outside_one_to_the_number_of_lists_are_refused(indexed, name, value):
    payload, manifest = serialize(indexed, VERSION, CREATED_AT)
    entry = {**manifest["approximate_index"], name: value}
    with pytest.raises(ArtifactError, match=rf"approximate_index.{name} must be an integer in \[1, 2\]"):
        deserialize(payload, resigned(payload, manifest, approximate_index=entry))
    with pytest.raises(ArtifactError, match=rf"approximate_index.{name} must be an integer"):
        serialize(with_tiny_index(indexed, **{name: value}), VERSION, CREATED_AT)


def test_an_index_in_the_manifest_without_its_arrays_is_refused(indexed, good):
    payload, manifest = good
    with pytest.raises(ArtifactError, match="manifest describes an approximate_index but model.npz has none"):
        deserialize(payload, resigned(payload, manifest, approximate_index=TINY_INDEX_ENTRY))


def test_index_arrays_without_their_manifest_entry_are_refused(indexed):
    payload, manifest = serialize(indexed, VERSION, CREATED_AT)
    for entry in (None, [1, 2]):
        with pytest.raises(ArtifactError, match="the manifest has no approximate_index"):
            deserialize(payload, resigned(payload, manifest, approximate_index=entry))


def test_an_index_of_factor_lists_alone_round_trips_without_similar_probes(indexed):
    # Training drops the direction lists when they would not beat exact search.
    factor_lists = replace(indexed, ivf_similar_centroids=None, ivf_similar_offsets=None, ivf_similar_rows=None,
                           approximate_index={**TINY_INDEX_ENTRY, "similar_probes": None})
    loaded = deserialize(*serialize(factor_lists, VERSION, CREATED_AT))
    np.testing.assert_array_equal(loaded.ivf_offsets, indexed.ivf_offsets)
    assert loaded.ivf_similar_centroids is None and loaded.ivf_similar_rows is None
    assert loaded.approximate_index == {**TINY_INDEX_ENTRY, "similar_probes": None}
    with pytest.raises(ArtifactError, match="gives similar_probes but model.npz has no ivf_similar_centroids"):
        serialize(replace(factor_lists, approximate_index=TINY_INDEX_ENTRY), VERSION, CREATED_AT)


# --- compact ids ------------------------------------------------------------------------------------


def _stored_arrays(payload: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def test_ascii_ids_are_stored_one_byte_a_character_and_read_back_as_text(make_tiny_artifact):
    artifact = make_tiny_artifact()
    payload, manifest = serialize(artifact, "v1", "2026-01-01T00:00:00+00:00")

    stored = _stored_arrays(payload)
    assert stored["item_ids"].dtype.kind == "S" and stored["user_ids"].dtype.kind == "S"
    loaded = deserialize(payload, manifest)
    assert loaded.item_ids.dtype.kind == "U" and loaded.item_ids.tolist() == artifact.item_ids.tolist()
    assert loaded.user_ids.tolist() == artifact.user_ids.tolist()


def test_ids_beyond_ascii_are_stored_as_unicode_and_read_back_equal(make_tiny_artifact):
    ids = np.array(["café", "i1", "日本", "i3"])
    artifact = replace(make_tiny_artifact(), item_ids=ids, item_id_order=sorting_order(ids))
    payload, manifest = serialize(artifact, "v1", "2026-01-01T00:00:00+00:00")

    assert _stored_arrays(payload)["item_ids"].dtype.kind == "U"
    assert _stored_arrays(payload)["user_ids"].dtype.kind == "S"  # each id array on its own
    assert deserialize(payload, manifest).item_ids.tolist() == ["café", "i1", "日本", "i3"]


def test_stored_id_bytes_that_are_not_ascii_are_refused(make_tiny_artifact):
    artifact = make_tiny_artifact()
    payload, manifest = serialize(artifact, "v1", "2026-01-01T00:00:00+00:00")
    arrays = _stored_arrays(payload)
    arrays["item_ids"] = np.array([b"i0", b"\xff", b"i2", b"i3"])
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    tampered = buffer.getvalue()

    with pytest.raises(ArtifactError, match="item_ids holds bytes that are not ASCII"):
        deserialize(tampered, {**manifest, "sha256": hashlib.sha256(tampered).hexdigest()})
