"""The Recommender on one loaded model, checked against numbers worked out by hand.

The tiny artifact (see tests.support.tiny_artifact): items i0=(1,0), i1=(0,1), i2=(1,1), i3=(2,0);
users u0=(1,0) saw i3, u1=(0,1) saw nothing, u2=(1,1) saw i0 and i2;
popularity i0=5, i1=1, i2=3, i3=2; regularization 0.1, alpha 1.
Its gram YᵀY = [[1+1+4, 1], [1, 1+1]] = [[6, 1], [1, 2]].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chalicelib.errors import ItemNotFound
from chalicelib.serving.recommender import Recommender

TINY_ITEMS = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)


@pytest.fixture
def tiny(make_tiny_artifact) -> Recommender:
    return Recommender(make_tiny_artifact())


# --- a user's profile / popular ---------------------------------------------

def test_known_user_gets_exact_scores_without_training_items(tiny):
    # u2=(1,1): i0=1, i1=1, i2=2, i3=2; i0 and i2 were seen -> i3 (2), i1 (1).
    answer = tiny.recommend(tiny.profile_for_user("u2"), 10)
    assert answer.strategy == "personalized"
    assert answer.item_ids == ["i3", "i1"]
    assert answer.scores == [2.0, 1.0]


def test_training_item_is_excluded_even_when_it_scores_best(tiny):
    # u0=(1,0): i3 scores 2 but was seen; i0=1 and i2=1 tie (lower index first), i1=0.
    answer = tiny.recommend(tiny.profile_for_user("u0"), 10)
    assert answer.item_ids == ["i0", "i2", "i1"]
    assert answer.scores == [1.0, 1.0, 0.0]


def test_unknown_user_gets_popular_items(tiny):
    answer = tiny.recommend(tiny.profile_for_user("nobody"), 2)
    assert answer.strategy == "popular"
    assert answer.item_ids == ["i0", "i2"]
    assert answer.scores == [5.0, 3.0]


def test_popular_orders_by_popularity_and_honours_exclude(tiny):
    assert tiny.popular(10).item_ids == ["i0", "i2", "i3", "i1"]
    assert tiny.popular(10, exclude=[0, 3]).item_ids == ["i2", "i1"]


# --- similar_items -------------------------------------------------------------

def test_similar_items_rank_by_cosine_without_the_item_itself(tiny):
    # Unit rows: i0=(1,0), i1=(0,1), i2=(1,1)/√2, i3=(1,0). cos with i0: i3=1, i2=1/√2, i1=0.
    answer = tiny.similar_items("i0", 10)
    assert answer.strategy == "similar"
    assert answer.item_ids == ["i3", "i2", "i1"]
    assert answer.scores == pytest.approx([1.0, 2 ** -0.5, 0.0], abs=1e-6)


def test_similar_items_of_unknown_id_raises_item_not_found(tiny):
    with pytest.raises(ItemNotFound):
        tiny.similar_items("missing", 3)


def test_zero_item_vector_gives_zero_similarity_not_nan(make_tiny_artifact):
    zeroed = TINY_ITEMS.copy()
    zeroed[1] = 0  # i1 has no signal at all
    recommender = Recommender(make_tiny_artifact(item_factors=zeroed))
    for item_id in ("i0", "i1"):
        scores = recommender.similar_items(item_id, 10).scores
        assert not np.isnan(scores).any()
    assert recommender.similar_items("i1", 10).scores == [0.0, 0.0, 0.0]


# --- a session's profile -------------------------------------------------------

def test_session_folds_in_seen_items_and_excludes_them(tiny):
    # Tiny uses λ=0.1, alpha=1: from the unit-confidence case x = (6.3,-3)/11.81,
    # so i1 = -3/11.81 and i2 = (6.3-3)/11.81 = 3.3/11.81; i0 and i3 were seen.
    answer = tiny.recommend(tiny.profile_for_session(["i0", "i3"]), 10)
    assert answer.strategy == "session"
    assert answer.item_ids == ["i2", "i1"]
    assert answer.scores == pytest.approx([3.3 / 11.81, -3 / 11.81], rel=1e-5)
    assert answer.details == {"ignored_item_ids": []}


def test_session_reports_unknown_ids_and_counts_repeats(tiny):
    # i2 twice at alpha 1 is c=2: x = (2.2, 10.2)/18.01 -> i1=10.2, i3=4.4, i0=2.2 (/18.01).
    answer = tiny.recommend(tiny.profile_for_session(["i2", "ghost", "i2"]), 10)
    assert answer.strategy == "session"
    assert answer.item_ids == ["i1", "i3", "i0"]
    assert answer.scores == pytest.approx([10.2 / 18.01, 4.4 / 18.01, 2.2 / 18.01], rel=1e-5)
    assert answer.details == {"ignored_item_ids": ["ghost"]}


def test_session_of_only_unknown_items_falls_back_to_popular(tiny):
    answer = tiny.recommend(tiny.profile_for_session(["x", "y"]), 3)
    assert answer.strategy == "popular"
    assert answer.item_ids == ["i0", "i2", "i3"]
    assert answer.to_json()["ignored_item_ids"] == ["x", "y"]


def test_session_of_a_trained_users_items_resembles_their_personal_list(sample_artifact):
    # The session vector solves the same ALS step the user's factors came from,
    # so the lists agree closely (9 of 10 at the time of writing; 5 leaves margin).
    recommender = Recommender(sample_artifact)
    user_id = sample_artifact.user_ids[0]
    seen = sample_artifact.seen_indices[sample_artifact.seen_indptr[0]:sample_artifact.seen_indptr[1]]
    personal = recommender.recommend(recommender.profile_for_user(user_id), 10).item_ids
    session = recommender.recommend(recommender.profile_for_session(sample_artifact.item_ids[seen].tolist()), 10)
    assert session.strategy == "session"
    assert not set(session.item_ids) & set(sample_artifact.item_ids[seen].tolist())
    assert len(set(personal) & set(session.item_ids)) >= 5


def test_to_json_has_version_strategy_and_typed_items(make_tiny_artifact):
    recommender = Recommender(replace(make_tiny_artifact(), version="v7"))
    body = recommender.recommend(recommender.profile_for_user("u2"), 2).to_json()
    assert body == {
        "model_version": "v7",
        "strategy": "personalized",
        "items": [{"item_id": "i3", "score": 2.0}, {"item_id": "i1", "score": 1.0}],
    }
    for item in body["items"]:
        assert type(item["item_id"]) is str and type(item["score"]) is float


# --- answers under a mask of allowed items ------------------------------------------------------------

def test_recommend_popular_and_similar_keep_only_allowed_items(tiny):
    allowed = np.array([True, True, False, True])  # i2 ruled out
    assert tiny.recommend(tiny.profile_for_user("u0"), 10, allowed).item_ids == ["i0", "i1"]
    assert tiny.popular(10, allowed=allowed).item_ids == ["i0", "i3", "i1"]
    assert tiny.popular(10, exclude=[0], allowed=allowed).item_ids == ["i3", "i1"]
    assert tiny.similar_items("i0", 10, allowed).item_ids == ["i3", "i1"]
    assert allowed.tolist() == [True, True, False, True]  # the caller's mask is left alone


def test_a_profile_without_a_vector_is_answered_by_popularity_under_the_mask(tiny):
    profile = tiny.profile_for_user("nobody")
    answer = tiny.recommend(profile, 2, np.array([False, True, True, True]))
    assert answer.strategy == "popular"
    assert answer.item_ids == ["i2", "i3"]


# --- rank: the caller's candidates in order ------------------------------------------------------------

def test_rank_orders_known_candidates_by_score_with_ties_to_the_lower_row(tiny):
    # u2=(1,1): i0=1, i1=1, i2=2, i3=2; the items they saw are ranked too (the caller chose them).
    ranking = tiny.rank(tiny.profile_for_user("u2"), ["i1", "i0", "i3", "i2"])
    assert ranking.strategy == "personalized"
    assert ranking.item_ids == ["i2", "i3", "i0", "i1"]
    assert ranking.scores == [2.0, 2.0, 1.0, 1.0]
    assert ranking.unknown_item_ids == []


def test_rank_counts_repeats_once_and_lists_unknown_ids_in_the_order_given(tiny):
    ranking = tiny.rank(tiny.profile_for_user("u0"), ["zz", "i3", "ghost", "i1", "i3", "zz", "i0"])
    assert ranking.item_ids == ["i3", "i0", "i1"]  # u0=(1,0): i3=2, i0=1, i1=0
    assert ranking.scores == [2.0, 1.0, 0.0]
    assert ranking.unknown_item_ids == ["zz", "ghost"]


def test_rank_without_a_vector_orders_by_popularity(tiny):
    ranking = tiny.rank(tiny.profile_for_user("nobody"), ["i3", "i1", "i0", "new"])
    assert ranking.strategy == "popular"
    assert ranking.item_ids == ["i0", "i3", "i1"]  # popularity 5, 2, 1
    assert ranking.scores == [5.0, 2.0, 1.0]
    assert ranking.unknown_item_ids == ["new"]


def test_rank_of_no_candidates_or_only_unknown_ones_is_empty(tiny):
    empty = tiny.rank(tiny.profile_for_user("u2"), [])
    assert (empty.item_ids, empty.scores, empty.unknown_item_ids) == ([], [], [])
    unknown = tiny.rank(tiny.profile_for_session(["i0"]), ["a", "b"])
    assert (unknown.item_ids, unknown.unknown_item_ids) == ([], ["a", "b"])
