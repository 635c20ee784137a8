"""Approximate top-N: the inverted file's candidate rows by hand, and the Recommender searching one.

The hand-made index has three lists along the axes of a 3-factor space:
list 0 (centroid x) holds positions 0-1, list 1 (y) position 2, list 2 (z) positions 3-4.
The query (0.1, 0.5, 0.9) scores the centroids 0.1, 0.5, 0.9: lists 2, 1, 0 best first.

The Recommender tests search a synthetic model of 3000 items in 30 well-separated clusters
(:func:`tests.support.clustered_artifact`) with the index training builds for it, against the same
model searched exactly.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chalicelib.serving.approximate import InvertedFileIndex
from chalicelib.serving.recommender import Profile, Recommender
from chalicelib.training.approximate_index import build_approximate_index
from tests.support import clustered_artifact

AXES = np.eye(3, dtype=np.float32)
OFFSETS = np.array([0, 2, 3, 5])
QUERY = np.array([0.1, 0.5, 0.9], dtype=np.float32)


# --- candidate rows, by hand ------------------------------------------------------------------


def test_the_best_lists_rows_come_back_ascending_for_one_two_and_all_probes():
    index = InvertedFileIndex(AXES, OFFSETS, probes=1)
    assert index.n_lists == 3
    assert index.list_order(QUERY).tolist() == [2, 1, 0]
    assert index.candidate_rows(QUERY).tolist() == [3, 4]  # the index's own probes: list 2
    assert index.candidate_rows(QUERY, probes=2).tolist() == [2, 3, 4]  # lists 2 and 1
    assert index.candidate_rows(QUERY, probes=3).tolist() == [0, 1, 2, 3, 4]
    assert index.candidate_rows(QUERY, probes=10).tolist() == [0, 1, 2, 3, 4]  # more probes than lists: all


def test_candidate_rows_are_ascending_even_when_a_lower_list_scores_worse():
    # Best lists 0 and 2 (0.9, 0.5): rows of list 0 (0, 1) before list 2's (3, 4), whatever their order by score.
    index = InvertedFileIndex(AXES, OFFSETS, probes=2)
    rows = index.candidate_rows(np.array([0.9, 0.1, 0.5], dtype=np.float32))
    assert rows.tolist() == [0, 1, 3, 4]
    assert rows.dtype == np.int64


def test_an_empty_list_contributes_no_rows():
    index = InvertedFileIndex(AXES, np.array([0, 2, 2, 5]), probes=2)  # list 1 is empty
    assert index.candidate_rows(QUERY).tolist() == [2, 3, 4]  # lists 2 (positions 2-4) and 1 (none)
    assert index.candidate_rows(np.array([1, 0.5, 0], dtype=np.float32)).tolist() == [0, 1]


def test_with_a_rows_permutation_the_lists_hold_the_rows_listed():
    # Positions 0..4 hold rows 4, 2, 0, 3, 1: list 0 = {4, 2}, list 1 = {0}, list 2 = {3, 1}.
    index = InvertedFileIndex(AXES, OFFSETS, probes=1, rows=np.array([4, 2, 0, 3, 1], dtype=np.int32))
    assert index.candidate_rows(QUERY).tolist() == [3, 1]
    assert index.candidate_rows(QUERY, probes=2).tolist() == [0, 3, 1]  # lists 1 and 2, in list order
    assert sorted(index.candidate_rows(QUERY, probes=3).tolist()) == [0, 1, 2, 3, 4]
    assert index.candidate_rows(QUERY).dtype == np.int64


# --- the Recommender on a clustered model ------------------------------------------------------


@pytest.fixture(scope="module")
def clustered():
    """(the clustered model with its approximate index, held-out user vectors)."""
    artifact, held_out = clustered_artifact()
    return build_approximate_index(artifact), held_out


@pytest.fixture(scope="module")
def exact(clustered) -> Recommender:
    return Recommender(clustered[0], approximate_min_items=None)


@pytest.fixture(scope="module")
def approximate(clustered) -> Recommender:
    return Recommender(clustered[0], approximate_min_items=0)


def profile(vector: np.ndarray, exclude=()) -> Profile:
    return Profile("personalized", vector, np.empty(0, np.int64), np.empty(0), np.asarray(exclude, dtype=np.int64))


def recall(approximate_ids: list[str], exact_ids: list[str]) -> float:
    return len(set(approximate_ids) & set(exact_ids)) / len(exact_ids)


def test_the_index_is_used_and_scores_a_small_share_of_the_items(clustered, approximate, exact):
    artifact, held_out = clustered
    assert approximate.approximate is not None and exact.approximate is None
    scored = [approximate.approximate.candidate_rows(vector).shape[0] for vector in held_out]
    assert np.mean(scored) < 0.25 * artifact.n_items


def test_held_out_users_get_nearly_the_exact_answers(clustered, approximate, exact):
    recalls = []
    for vector in clustered[1]:
        answer = approximate.recommend(profile(vector), 10)
        truth = exact.recommend(profile(vector), 10)
        assert len(answer.item_ids) == 10
        recalls.append(recall(answer.item_ids, truth.item_ids))
    assert np.mean(recalls) >= 0.98


def test_an_answer_found_by_both_has_the_exact_scores(clustered, approximate, exact):
    vector = clustered[1][0]
    answer, truth = approximate.recommend(profile(vector), 10), exact.recommend(profile(vector), 10)
    exact_scores = dict(zip(truth.item_ids, truth.scores, strict=True))
    shared = [item_id for item_id in answer.item_ids if item_id in exact_scores]
    assert shared
    for item_id, score in zip(answer.item_ids, answer.scores, strict=True):
        if item_id in exact_scores:
            assert score == pytest.approx(exact_scores[item_id], rel=1e-6)
    assert answer.scores == sorted(answer.scores, reverse=True)


def test_a_users_seen_items_are_never_recommended(clustered, approximate, exact):
    artifact = clustered[0]
    for user_id in artifact.user_ids[:60].tolist():
        user = approximate.profile_for_user(user_id)
        seen = set(artifact.item_ids[user.exclude].tolist())
        # Each user saw their three best items: without the exclusion the index would return some of them.
        assert seen & set(approximate.recommend(profile(user.vector), 10).item_ids)
        answer = approximate.recommend(user, 10).item_ids
        assert len(answer) == 10 and not seen & set(answer)
        assert recall(answer, exact.recommend(exact.profile_for_user(user_id), 10).item_ids) >= 0.7


def test_only_allowed_items_are_recommended(clustered, approximate, exact):
    artifact, held_out = clustered
    allowed = np.zeros(artifact.n_items, dtype=bool)
    allowed[::2] = True  # every other row
    recalls = []
    for vector in held_out[:50]:
        answer = approximate.recommend(profile(vector), 10, allowed)
        assert len(answer.item_ids) == 10
        assert allowed[approximate.item_rows(answer.item_ids)].all()
        recalls.append(recall(answer.item_ids, exact.recommend(profile(vector), 10, allowed).item_ids))
    assert np.mean(recalls) >= 0.98


def test_fewer_than_n_allowed_in_the_probed_lists_falls_back_to_exact_search(clustered, approximate, exact):
    artifact, held_out = clustered
    vector = held_out[0]
    candidates = approximate.approximate.candidate_rows(vector)
    allowed = np.ones(artifact.n_items, dtype=bool)
    allowed[candidates] = False
    allowed[candidates[:3]] = True  # three allowed where the index looks, the rest elsewhere
    answer = approximate.recommend(profile(vector, exclude=candidates[:1]), 10, allowed)
    truth = exact.recommend(profile(vector, exclude=candidates[:1]), 10, allowed)
    assert (answer.item_ids, answer.scores) == (truth.item_ids, truth.scores)
    assert len(answer.item_ids) == 10
    assert not set(approximate.item_rows(answer.item_ids).tolist()) <= set(candidates.tolist())


def test_similar_items_nearly_match_exact_cosine_search(clustered, approximate, exact):
    artifact = clustered[0]
    recalls = []
    for item_id in artifact.item_ids[::10].tolist():
        answer = approximate.similar_items(item_id, 10)
        assert answer.strategy == "similar" and len(answer.item_ids) == 10
        assert item_id not in answer.item_ids
        recalls.append(recall(answer.item_ids, exact.similar_items(item_id, 10).item_ids))
    assert np.mean(recalls) >= 0.98


def test_similar_items_respect_the_allowed_mask(clustered, approximate):
    artifact = clustered[0]
    allowed = np.zeros(artifact.n_items, dtype=bool)
    allowed[1::3] = True
    for item_id in artifact.item_ids[:20].tolist():
        answer = approximate.similar_items(item_id, 10, allowed)
        assert len(answer.item_ids) == 10
        assert allowed[approximate.item_rows(answer.item_ids)].all()


def test_a_model_below_the_threshold_is_searched_exactly(clustered, exact):
    # One probe each way, so the index alone would miss some of the exact answers.
    artifact, held_out = clustered
    artifact = replace(artifact, approximate_index={**artifact.approximate_index, "probes": 1, "similar_probes": 1})
    one_probe = Recommender(artifact, approximate_min_items=artifact.n_items)  # at the threshold: in use
    below = Recommender(artifact, approximate_min_items=artifact.n_items + 1)
    assert one_probe.approximate is not None and below.approximate is None
    vectors = [vector for vector in held_out
               if one_probe.recommend(profile(vector), 10).item_ids != exact.recommend(profile(vector), 10).item_ids]
    assert vectors, "one probe finds every exact answer: the comparison below would prove nothing"
    for vector in vectors:
        assert below.recommend(profile(vector), 10) == exact.recommend(profile(vector), 10)
    for item_id in artifact.item_ids[:100].tolist():
        assert below.similar_items(item_id, 10) == exact.similar_items(item_id, 10)
