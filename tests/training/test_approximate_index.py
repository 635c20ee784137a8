"""Building the approximate index: items regrouped without changing an answer, lists that partition the
rows, probes calibrated to the recall they give, and an artifact that round-trips with its index.

Most tests use the synthetic model of 3000 items in 30 clusters (:func:`tests.support.clustered_artifact`);
the calibration maths is also checked on hand-made lists whose answers are known.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from chalicelib.models.artifact import deserialize, make_artifact, permute_items, serialize, sorting_order
from chalicelib.serving.approximate import InvertedFileIndex
from chalicelib.serving.ranking import best_k, inverse_norms
from chalicelib.serving.recommender import Recommender
from chalicelib.training.approximate_index import (
    SIMILAR_SHARE_LIMIT,
    ApproximateIndexOptions,
    assign,
    build_approximate_index,
    calibrate,
    kmeans,
)
from tests.support import clustered_artifact

IVF_ARRAYS = ("ivf_centroids", "ivf_offsets", "ivf_similar_centroids", "ivf_similar_offsets", "ivf_similar_rows")


@pytest.fixture(scope="module")
def original():
    return clustered_artifact()[0]


@pytest.fixture(scope="module")
def built(original):
    return build_approximate_index(original)


def seen_by_id(artifact) -> dict[str, dict[str, float]]:
    """Each user's training interactions: {user id: {item id: value}}."""
    seen = {}
    for row, user_id in enumerate(artifact.user_ids.tolist()):
        span = slice(artifact.seen_indptr[row], artifact.seen_indptr[row + 1])
        items = artifact.item_ids[artifact.seen_indices[span]].tolist()
        seen[user_id] = dict(zip(items, artifact.seen_values[span].tolist(), strict=True))
    return seen


def assert_same_answers(before, after):
    assert before.item_ids == after.item_ids
    assert after.scores == pytest.approx(before.scores, rel=1e-5, abs=1e-6)


# --- permute_items ----------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_permuting_the_items_keeps_every_exact_answer_and_what_each_user_saw(original, seed):
    order = np.random.default_rng(seed).permutation(original.n_items)
    permuted = permute_items(original, order)
    np.testing.assert_array_equal(permuted.item_ids, original.item_ids[order])
    np.testing.assert_array_equal(permuted.item_factors, original.item_factors[order])
    np.testing.assert_array_equal(permuted.item_popularity, original.item_popularity[order])
    np.testing.assert_array_equal(permuted.item_id_order, sorting_order(permuted.item_ids))
    assert seen_by_id(permuted) == seen_by_id(original)

    before, after = Recommender(original), Recommender(permuted)
    for user_id in original.user_ids[:20].tolist():
        assert_same_answers(before.recommend(before.profile_for_user(user_id), 10),
                            after.recommend(after.profile_for_user(user_id), 10))
        recent = original.item_ids[:3].tolist()  # folded in with the user's training interactions
        assert_same_answers(before.recommend(before.profile_for_user(user_id, recent, [1.0, 2.0, -1.0]), 10),
                            after.recommend(after.profile_for_user(user_id, recent, [1.0, 2.0, -1.0]), 10))
    for item_id in original.item_ids[:20].tolist():
        assert_same_answers(before.similar_items(item_id, 10), after.similar_items(item_id, 10))
        assert_same_answers(before.recommend(before.profile_for_session([item_id]), 10),
                            after.recommend(after.profile_for_session([item_id]), 10))


def test_permuting_drops_the_index_of_the_old_rows(built):
    permuted = permute_items(built, np.arange(built.n_items)[::-1])
    assert all(getattr(permuted, name) is None for name in IVF_ARRAYS)
    assert permuted.approximate_index is None


# --- the built index ---------------------------------------------------------------------------


def test_the_manifest_entry_records_lists_probes_in_range_and_the_recall_reached(built):
    entry = built.approximate_index
    lists = entry["lists"]
    assert lists == round(np.sqrt(built.n_items)) == 55
    assert built.ivf_centroids.shape[0] == built.ivf_similar_centroids.shape[0] == lists
    for name in ("probes", "similar_probes"):
        assert type(entry[name]) is int and 1 <= entry[name] <= lists
    # Well-separated clusters: the target is met by scoring a few lists, not all of them.
    assert entry["probes"] < lists // 2 and entry["similar_probes"] < lists // 2
    target = ApproximateIndexOptions().target_recall
    assert entry["target_recall_at_10"] == target
    assert entry["user_recall_at_10"] >= target and entry["similar_recall_at_10"] >= target
    assert 0 < entry["user_scored_share"] < 0.5 and 0 < entry["similar_scored_share"] < 0.5
    assert entry["calibration_queries"] == min(ApproximateIndexOptions().calibration_queries, built.n_users)
    assert entry["similar_index"] == "kept"
    assert entry["build_seconds"] >= 0


def test_each_factor_list_is_a_contiguous_block_of_the_rows_nearest_its_centroid(built):
    offsets = built.ivf_offsets
    assert offsets.dtype == np.int64 and offsets.shape == (built.ivf_centroids.shape[0] + 1,)
    assert offsets[0] == 0 and offsets[-1] == built.n_items and np.all(np.diff(offsets) >= 0)
    nearest = assign(built.item_factors, built.ivf_centroids)
    np.testing.assert_array_equal(nearest, np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets)))


def test_the_direction_lists_partition_the_rows_by_nearest_unit_centroid(built):
    rows, offsets = built.ivf_similar_rows, built.ivf_similar_offsets
    assert rows.dtype == np.int32
    assert sorted(rows.tolist()) == list(range(built.n_items))
    assert offsets[0] == 0 and offsets[-1] == built.n_items and np.all(np.diff(offsets) >= 0)
    np.testing.assert_allclose(np.linalg.norm(built.ivf_similar_centroids, axis=1), 1.0, rtol=1e-5)
    unit = built.item_factors * inverse_norms(built.item_factors)[:, None]
    nearest = assign(unit, built.ivf_similar_centroids, spherical=True)
    np.testing.assert_array_equal(nearest[rows], np.repeat(np.arange(offsets.shape[0] - 1), np.diff(offsets)))


def test_the_built_model_gives_the_original_exact_answers(original, built):
    assert seen_by_id(built) == seen_by_id(original)
    before, after = Recommender(original), Recommender(built)
    for user_id in original.user_ids[:20].tolist():
        assert_same_answers(before.recommend(before.profile_for_user(user_id), 10),
                            after.recommend(after.profile_for_user(user_id), 10))


def test_lists_are_as_asked_and_never_more_than_the_items(make_tiny_artifact, original):
    assert build_approximate_index(original, ApproximateIndexOptions(lists=12)).approximate_index["lists"] == 12
    tiny = build_approximate_index(make_tiny_artifact(), ApproximateIndexOptions(lists=10))
    assert tiny.approximate_index["lists"] == 4 == tiny.ivf_centroids.shape[0]


def test_serialize_then_deserialize_keeps_the_index_and_its_entry(built):
    payload, manifest = serialize(built, "20260101T000000Z-abc123", "2026-01-02T03:04:05+00:00")
    manifest = json.loads(json.dumps(manifest))  # as the registry stores it
    loaded = deserialize(payload, manifest)
    for name in (*IVF_ARRAYS, "item_ids", "item_factors", "item_id_order", "seen_indices"):
        assert getattr(loaded, name).dtype == getattr(built, name).dtype, name
        np.testing.assert_array_equal(getattr(loaded, name), getattr(built, name))
    assert loaded.approximate_index == built.approximate_index == manifest["approximate_index"]
    assert Recommender(loaded, approximate_min_items=0).approximate.probes == built.approximate_index["probes"]


def test_direction_lists_that_would_score_too_many_items_are_dropped():
    # Directions spread evenly (no clusters): 0.99 recall needs about half of the lists.
    rng = np.random.default_rng(0)
    unclustered = make_artifact(
        item_factors=rng.normal(size=(400, 8)), user_factors=rng.normal(size=(50, 8)),
        user_ids=[f"u{u}" for u in range(50)], item_ids=[f"i{i}" for i in range(400)], item_popularity=np.ones(400),
        seen_indptr=np.zeros(51, dtype=np.int64), seen_indices=np.zeros(0, dtype=np.int32), algorithm="random",
        hyperparameters={"regularization": 0.1, "alpha": 1.0})
    built = build_approximate_index(unclustered)
    entry = built.approximate_index
    assert entry["similar_scored_share"] > SIMILAR_SHARE_LIMIT
    assert entry["similar_probes"] is None and entry["similar_index"].startswith("dropped")
    assert built.ivf_similar_centroids is None and built.ivf_similar_offsets is None and built.ivf_similar_rows is None
    assert built.ivf_centroids is not None and 1 <= entry["probes"] <= entry["lists"]
    loaded = deserialize(*serialize(built, "20260101T000000Z-abc123", "2026-01-02T03:04:05+00:00"))
    assert loaded.approximate_index == entry and loaded.ivf_similar_rows is None
    approximate, exact = Recommender(loaded, approximate_min_items=0), Recommender(loaded)
    assert approximate.approximate is not None
    for item_id in loaded.item_ids[:20].tolist():
        assert approximate.similar_items(item_id, 10) == exact.similar_items(item_id, 10)


# --- k-means ---------------------------------------------------------------------------------


def test_assign_is_the_nearest_centroid_or_with_spherical_the_largest_dot_product():
    centroids = np.array([[1, 0], [4, 4]], dtype=np.float32)
    points = np.array([[1.5, 0.5], [3, 3], [0, 0]], dtype=np.float32)
    # (1.5, 0.5) is 0.5 from (1,0) squared, 18.5 from (4,4); its dot products are 1.5 and 8.
    assert assign(points, centroids).tolist() == [0, 1, 0]
    assert assign(points, centroids, spherical=True).tolist() == [1, 1, 0]


def test_kmeans_returns_float32_centroids_and_each_points_nearest(original):
    rng = np.random.default_rng(3)
    centroids, labels = kmeans(original.item_factors, 7, 5, rng)
    assert centroids.dtype == np.float32 and centroids.shape == (7, original.n_factors)
    np.testing.assert_array_equal(labels, assign(original.item_factors, centroids))
    unit = original.item_factors * inverse_norms(original.item_factors)[:, None]
    centroids, labels = kmeans(unit, 7, 5, rng, spherical=True)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(labels, assign(unit, centroids, spherical=True))


# --- calibration ------------------------------------------------------------------------------


def blobs(sizes: list[int], directions: np.ndarray) -> tuple[np.ndarray, InvertedFileIndex]:
    """Items in contiguous blocks of *sizes*, each block around its direction (small seeded noise),
    and the index whose lists are those blocks with the directions as centroids."""
    rng = np.random.default_rng(0)
    factors = np.concatenate([direction + rng.uniform(-0.01, 0.01, (size, 2))
                              for size, direction in zip(sizes, directions, strict=True)]).astype(np.float32)
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return factors, InvertedFileIndex(directions.astype(np.float32), offsets, probes=len(sizes))


def test_one_probe_when_every_exact_top_10_sits_in_the_best_list():
    # Lists of 12 items around (1,0), (0,1) and (-1,0); each query points at one of them.
    factors, index = blobs([12, 12, 12], np.array([[1, 0], [0, 1], [-1, 0]]))
    queries = np.array([[1, 0.1], [0.1, 1], [-1, -0.1]], dtype=np.float32)
    probes, recall, share = calibrate(index, factors, queries, None, 0.99)
    assert (probes, recall) == (1, 1.0)
    assert share == pytest.approx(12 / 36)


def test_probes_follow_the_lists_a_top_10_is_split_across():
    # A list of 5 items around (2,0) and one of 20 around (1,0): the query (1,0) has the 5 and the
    # best 5 of the 20 in its top 10. The small list's centroid scores 2, the large one's 1: one probe
    # finds half of the top 10 (5 of 36 items scored), two find all of it (25 of 36).
    factors, index = blobs([5, 20, 11], np.array([[2, 0], [1, 0], [-1, 0]]))
    query = np.array([[1, 0]], dtype=np.float32)
    assert calibrate(index, factors, query, None, 0.99) == (2, 1.0, pytest.approx(25 / 36))
    assert calibrate(index, factors, query, None, 0.5) == (1, 0.5, pytest.approx(5 / 36))
    assert calibrate(index, factors, query, None, 0.51)[:2] == (2, 1.0)


def test_cosine_calibration_ranks_by_direction_through_the_rows_listed():
    # Rows 0..11 lie along (10,0), rows 12..23 along (0,1); the rows listed put 12..23 in list 0 (centroid
    # (0,1)), the best list for the query (0.2, 1). By cosine its top 10 are (0,1) items (0.98 against
    # 0.2), all in that list; by inner product they are the long items (1.96 against 0.98), in list 1.
    factors, _ = blobs([12, 12], np.array([[10, 0], [0, 1]]))
    rows = np.concatenate([np.arange(12, 24), np.arange(12)]).astype(np.int32)
    index = InvertedFileIndex(np.array([[0, 1], [1, 0]], np.float32), np.array([0, 12, 24]), probes=2, rows=rows)
    query = np.array([[0.2, 1]], dtype=np.float32) / np.hypot(0.2, 1)
    assert calibrate(index, factors, query, inverse_norms(factors), 0.99)[:2] == (1, 1.0)
    assert calibrate(index, factors, query, None, 0.99)[:2] == (2, 1.0)  # inner product: the long items


def test_calibrated_recall_is_the_recall_of_the_candidates_serving_scores(built):
    """calibrate infers recall from the rank of each answer's list; count it from candidate_rows instead."""
    factors = built.item_factors
    index = InvertedFileIndex(built.ivf_centroids, built.ivf_offsets, probes=1)
    queries = clustered_artifact(seed=11)[1][:40]
    truth = best_k(queries @ factors.T, 10)
    measured = {p: np.mean([np.isin(best, index.candidate_rows(query, p)).mean()
                            for query, best in zip(queries, truth, strict=True)])
                for p in range(1, 8)}
    assert measured[1] < 1.0, "every answer in the best list: the comparison would prove little"
    for expected in measured.values():
        probes, recall, _ = calibrate(index, factors, queries, None, expected)
        fewest = min(q for q, value in measured.items() if value >= expected - 1e-9)
        assert probes == fewest
        assert recall == pytest.approx(measured[fewest])
