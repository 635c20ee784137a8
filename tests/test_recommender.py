"""Scoring maths and the Recommender, checked against numbers worked out by hand.

The tiny artifact (see conftest): items i0=(1,0), i1=(0,1), i2=(1,1), i3=(2,0);
users u0=(1,0) saw i3, u1=(0,1) saw nothing, u2=(1,1) saw i0 and i2;
popularity i0=5, i1=1, i2=3, i3=2; regularization 0.1, alpha 1.
Its gram YᵀY = [[1+1+4, 1], [1, 1+1]] = [[6, 1], [1, 2]].
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from chalicelib.errors import ItemNotFound
from chalicelib.recommender import Recommender, fold_in, top_n

TINY_ITEMS = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)
TINY_GRAM = np.array([[6.0, 1.0], [1.0, 2.0]])


@pytest.fixture
def tiny(make_tiny_artifact) -> Recommender:
    return Recommender(make_tiny_artifact())


# --- top_n -------------------------------------------------------------------

def test_top_n_orders_best_first_and_breaks_ties_by_lower_index():
    indices, scores = top_n(np.array([0.5, 2.0, 1.0, 2.0, -1.0]), 3)
    assert indices.tolist() == [1, 3, 2]  # the two 2.0s: index 1 before 3
    assert scores.tolist() == [2.0, 2.0, 1.0]


def test_top_n_keeps_lower_index_when_a_tie_straddles_the_cut():
    indices, _ = top_n(np.array([0.0, 5.0, 7.0, 5.0, 5.0]), 2)
    assert indices.tolist() == [2, 1]


def test_top_n_returns_only_what_is_available_when_n_is_larger():
    assert top_n(np.array([3.0, 1.0, 2.0]), 10)[0].tolist() == [0, 2, 1]
    assert top_n(np.array([3.0, 1.0, 2.0]), 10, exclude=np.array([0]))[0].tolist() == [2, 1]


def test_top_n_never_returns_excluded_indices():
    indices, scores = top_n(np.array([9.0, 8.0, 7.0, 6.0]), 2, exclude=np.array([0, 2]))
    assert indices.tolist() == [1, 3]
    assert scores.tolist() == [8.0, 6.0]


def test_top_n_is_empty_when_everything_is_excluded():
    indices, scores = top_n(np.array([1.0, 2.0]), 5, exclude=np.array([0, 1]))
    assert indices.size == 0 and scores.size == 0


# --- recommend_for_user / popular ---------------------------------------------

def test_known_user_gets_exact_scores_without_training_items(tiny):
    # u2=(1,1): i0=1, i1=1, i2=2, i3=2; i0 and i2 were seen -> i3 (2), i1 (1).
    answer = tiny.recommend_for_user("u2", 10)
    assert answer.strategy == "personalized"
    assert answer.item_ids == ["i3", "i1"]
    assert answer.scores == [2.0, 1.0]


def test_training_item_is_excluded_even_when_it_scores_best(tiny):
    # u0=(1,0): i3 scores 2 but was seen; i0=1 and i2=1 tie (lower index first), i1=0.
    answer = tiny.recommend_for_user("u0", 10)
    assert answer.item_ids == ["i0", "i2", "i1"]
    assert answer.scores == [1.0, 1.0, 0.0]


def test_unknown_user_gets_popular_items(tiny):
    answer = tiny.recommend_for_user("nobody", 2)
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


# --- fold_in -------------------------------------------------------------------

def test_fold_in_with_unit_confidences_is_the_regularised_solve():
    # c0=c3=1 so no (c-1) term: A = [[6.1,1],[1,2.1]], det 11.81; b = y0+y3 = (3,0).
    # x = [[2.1,-1],[-1,6.1]] (3,0) / 11.81 = (6.3, -3) / 11.81.
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 3]), np.array([1.0, 1.0]), 0.1, alpha=1.0)
    np.testing.assert_allclose(x, np.array([6.3, -3.0]) / 11.81, rtol=1e-6)


def test_fold_in_adds_confidence_weighted_outer_products():
    # i2 value 1, alpha 2 -> c=2: A = [[6.1,1],[1,2.1]] + 1*[[1,1],[1,1]] = [[7.1,2],[2,3.1]],
    # det 7.1*3.1-4 = 18.01; b = 2*(1,1); x = (3.1*2-2*2, -2*2+7.1*2) / 18.01 = (2.2, 10.2) / 18.01.
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([2]), np.array([1.0]), 0.1, alpha=2.0)
    np.testing.assert_allclose(x, np.array([2.2, 10.2]) / 18.01, rtol=1e-6)


def test_fold_in_sums_repeated_items_before_confidence():
    # [2, 2] with values 1, 1 at alpha 1 is c=2 on i2: the same system as above.
    # (Two separate c=1 entries would leave A=[[6.1,1],[1,2.1]] -> (2.2, 10.2)/11.81 instead.)
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([2, 2]), np.array([1.0, 1.0]), 0.1, alpha=1.0)
    np.testing.assert_allclose(x, np.array([2.2, 10.2]) / 18.01, rtol=1e-6)


def test_negative_value_weights_a_with_its_magnitude_but_not_b():
    # alpha 2: c0=2, c2=-2. A = [[6.1,1],[1,2.1]] + 1*y0y0ᵀ + (|-2|-1)*y2y2ᵀ = [[8.1,2],[2,3.1]],
    # det 8.1*3.1-4 = 21.11; b = 2*y0 = (2,0) only; x = (3.1*2, -2*2) / 21.11 = (6.2, -4) / 21.11.
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 2]), np.array([1.0, -1.0]), 0.1, alpha=2.0)
    np.testing.assert_allclose(x, np.array([6.2, -4.0]) / 21.11, rtol=1e-6)


def test_fold_in_matches_implicit_recalculate_user():
    """Session answers rely on fold_in reproducing the user step implicit trains with."""
    import scipy.sparse as sp
    from implicit.cpu.als import AlternatingLeastSquares
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    counts = rng.integers(0, 4, size=(30, 20)) * (rng.random((30, 20)) < 0.3)  # values 0..3
    user_items = sp.csr_matrix(counts.astype(np.float32))
    with threadpool_limits(1, "blas"):
        model = AlternatingLeastSquares(factors=8, regularization=0.1, alpha=2.0, iterations=3, random_state=0)
        model.fit(user_items, show_progress=False)
    userid = 0
    row = user_items[userid]
    assert row.nnz > 1 and row.data.max() > 1  # the example exercises confidences above 1

    expected = model.recalculate_user(userid, row)
    y = model.item_factors.astype(np.float64)
    actual = fold_in(model.item_factors, y.T @ y, row.indices, row.data, 0.1, alpha=2.0)
    np.testing.assert_allclose(actual, np.ravel(expected), rtol=1e-4, atol=1e-6)


# --- recommend_for_session -------------------------------------------------------

def test_session_folds_in_seen_items_and_excludes_them(tiny):
    # Tiny uses λ=0.1, alpha=1: from the unit-confidence case x = (6.3,-3)/11.81,
    # so i1 = -3/11.81 and i2 = (6.3-3)/11.81 = 3.3/11.81; i0 and i3 were seen.
    answer = tiny.recommend_for_session(["i0", "i3"], 10)
    assert answer.strategy == "session"
    assert answer.item_ids == ["i2", "i1"]
    assert answer.scores == pytest.approx([3.3 / 11.81, -3 / 11.81], rel=1e-5)
    assert answer.details == {"ignored_item_ids": []}


def test_session_reports_unknown_ids_and_counts_repeats(tiny):
    # i2 twice at alpha 1 is c=2: x = (2.2, 10.2)/18.01 -> i1=10.2, i3=4.4, i0=2.2 (/18.01).
    answer = tiny.recommend_for_session(["i2", "ghost", "i2"], 10)
    assert answer.strategy == "session"
    assert answer.item_ids == ["i1", "i3", "i0"]
    assert answer.scores == pytest.approx([10.2 / 18.01, 4.4 / 18.01, 2.2 / 18.01], rel=1e-5)
    assert answer.details == {"ignored_item_ids": ["ghost"]}


def test_session_of_only_unknown_items_falls_back_to_popular(tiny):
    answer = tiny.recommend_for_session(["x", "y"], 3)
    assert answer.strategy == "popular"
    assert answer.item_ids == ["i0", "i2", "i3"]
    assert answer.to_json()["ignored_item_ids"] == ["x", "y"]


def test_session_of_a_trained_users_items_resembles_their_personal_list(sample_artifact):
    # The session vector solves the same ALS step the user's factors came from,
    # so the lists agree closely (9 of 10 at the time of writing; 5 leaves margin).
    recommender = Recommender(sample_artifact)
    user_id = sample_artifact.user_ids[0]
    seen = sample_artifact.seen_indices[sample_artifact.seen_indptr[0]:sample_artifact.seen_indptr[1]]
    personal = recommender.recommend_for_user(user_id, 10).item_ids
    session = recommender.recommend_for_session(sample_artifact.item_ids[seen].tolist(), 10)
    assert session.strategy == "session"
    assert not set(session.item_ids) & set(sample_artifact.item_ids[seen].tolist())
    assert len(set(personal) & set(session.item_ids)) >= 5


def test_to_json_has_version_strategy_and_typed_items(make_tiny_artifact):
    recommender = Recommender(replace(make_tiny_artifact(), version="v7"))
    body = recommender.recommend_for_user("u2", 2).to_json()
    assert body == {
        "model_version": "v7",
        "strategy": "personalized",
        "items": [{"item_id": "i3", "score": 2.0}, {"item_id": "i1", "score": 1.0}],
    }
    for item in body["items"]:
        assert type(item["item_id"]) is str and type(item["score"]) is float
