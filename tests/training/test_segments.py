"""Audience segments at retrain time: two obvious groups of users make two segments, described by their items."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.models.artifact import deserialize, make_artifact, serialize
from chalicelib.training.segments import MAX_SEGMENTS, add_segments, characteristic_items, cluster_users
from tests.support import tiny_artifact


def two_groups() -> tuple:
    """Six users: u0..u2 point along (1, 0) and saw items a0, a1 (u2 also b0); u3..u5 along (0, 1) saw b0, b1.

    Items a0, a1 = (1, 0); b0, b1 = (0, 1). Lengths differ within a group (activity), directions do not.
    """
    return make_artifact(
        item_factors=np.array([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=np.float32),
        user_factors=np.array([[1, 0.1], [3, 0], [0.5, 0.05], [0, 1], [0.1, 2], [0, 0.4]], dtype=np.float32),
        user_ids=[f"u{n}" for n in range(6)], item_ids=["a0", "a1", "b0", "b1"],
        item_popularity=np.array([3, 3, 4, 3], dtype=np.float32),
        # u0: a0 a1 | u1: a0 a1 | u2: a0 b0 | u3: b0 b1 | u4: b0 b1 | u5: b0 b1
        seen_indptr=np.array([0, 2, 4, 6, 8, 10, 12]),
        seen_indices=np.array([0, 1, 0, 1, 0, 2, 2, 3, 2, 3, 2, 3]),
        algorithm="test", hyperparameters={"regularization": 0.1, "alpha": 1.0})


def test_two_obvious_groups_make_two_segments_with_the_right_members():
    assignment, centroids = cluster_users(two_groups().user_factors, 2, seed=7)

    assert assignment.dtype == np.int16 and centroids.shape == (2, 2)
    assert len(set(assignment[:3])) == 1 and len(set(assignment[3:])) == 1 and assignment[0] != assignment[3]
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), [1, 1], rtol=1e-5)  # unit centroids
    np.testing.assert_allclose(centroids[assignment[0]], [1, 0], atol=0.1)


def test_clustering_is_seeded():
    artifact = two_groups()

    first, second = (cluster_users(artifact.user_factors, 2, seed=3) for _ in range(2))

    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_characteristic_items_are_over_represented_in_the_segment_by_hand():
    artifact = two_groups()
    assignment = np.array([0, 0, 0, 1, 1, 1], dtype=np.int16)

    described = characteristic_items(artifact.seen_indptr, artifact.seen_indices, artifact.seen_values, assignment,
                                     2, artifact.n_items)

    # segment 0: a0 by 3 of 3 members, 3 of 6 users overall: lift (3/3)/(3/6) = 2; a1 2/3 over 2/6 = 2;
    # b0 (u2 only) 1/3 over 4/6 = 0.5 is under-represented. Segment 1: b1 3/3 over 3/6 = 2; b0 3/3 over 4/6 = 1.5.
    assert described[0] == [(0, 3, 2.0), (1, 2, 2.0)]
    assert described[1] == [(3, 3, 2.0), (2, 3, 1.5)]


def test_an_item_most_members_engaged_with_comes_before_an_obscure_one_with_a_higher_lift():
    """A segment is described by what most of it shares, not by a rarity two members happened to like."""
    # 40 users, 0..9 in segment 0. Item 0: users 0 and 1 only; item 1: users 0..29.
    rows = {user: ([0] if user < 2 else []) + ([1] if user < 30 else []) for user in range(40)}
    indptr = np.cumsum([0] + [len(rows[user]) for user in range(40)])
    indices = np.array([item for user in range(40) for item in rows[user]])
    assignment = np.array([0] * 10 + [1] * 30, dtype=np.int16)

    described = characteristic_items(indptr, indices, np.ones(indices.shape[0]), assignment, 2, 2)

    # item 0: share 2/10, lift (2/10)/(2/40) = 4, 0.2 ln 4 = 0.277; item 1: share 1, lift 1/(30/40) = 4/3, ln 4/3 = 0.288.
    assert [(row, members) for row, members, _ in described[0]] == [(1, 10), (0, 2)]
    assert [round(lift, 4) for _, _, lift in described[0]] == [1.3333, 4.0]


def test_an_item_too_few_members_engaged_with_does_not_describe_a_segment():
    artifact = two_groups()
    assignment = np.array([0, 0, 0, 1, 1, 1], dtype=np.int16)

    described = characteristic_items(artifact.seen_indptr, artifact.seen_indices, artifact.seen_values, assignment,
                                     2, artifact.n_items, min_share=0.9)

    assert described[0] == [(0, 3, 2.0)]  # a1: 2 of 3 members, under 90 %


def test_negative_interactions_are_not_engagement():
    artifact = two_groups()
    values = np.ones(12, dtype=np.float32)
    values[[0, 2, 4]] = -1  # u0, u1 and u2 disliked a0
    assignment = np.array([0, 0, 0, 1, 1, 1], dtype=np.int16)

    described = characteristic_items(artifact.seen_indptr, artifact.seen_indices, values, assignment, 2, 4)

    assert [row for row, _, _ in described[0]] == [1]


def test_segments_travel_with_the_artifact_and_older_artifacts_have_none():
    artifact = add_segments(two_groups(), 2, seed=7)

    payload, manifest = serialize(artifact, "v1", "2026-01-01T00:00:00+00:00")
    loaded = deserialize(payload, manifest)

    np.testing.assert_array_equal(loaded.user_segments, artifact.user_segments)
    assert loaded.segments == manifest["segments"] == artifact.segments
    sizes = sorted(segment["users"] for segment in loaded.segments["segments"])
    assert sizes == [3, 3]
    a_segment = loaded.segments["segments"][int(loaded.user_segments[0])]
    assert [item["item_id"] for item in a_segment["items"]] == ["a0", "a1"]
    plain = deserialize(*serialize(tiny_artifact(), "v0", "2026-01-01T00:00:00+00:00"))
    assert plain.segments is None and plain.user_segments is None


def test_no_segments_when_none_are_asked_for():
    assert add_segments(two_groups(), 0, seed=1).segments is None


@pytest.mark.parametrize("count", [-1, MAX_SEGMENTS + 1, 2.5, True])
def test_a_segment_count_out_of_range_is_refused(count):
    with pytest.raises(InvalidTrainingOptions, match="user segments"):
        add_segments(two_groups(), count, seed=1)
