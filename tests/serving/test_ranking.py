"""Ranking maths, checked against numbers worked out by hand: top-k with exclusions and ties, fold-in.

Tiny item factors (rows i0..i3): (1,0), (0,1), (1,1), (2,0); their gram YᵀY = [[6, 1], [1, 2]].
"""

from __future__ import annotations

import numpy as np

from chalicelib.serving.ranking import best_k, fold_in, top_n

TINY_ITEMS = np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32)
TINY_GRAM = np.array([[6.0, 1.0], [1.0, 2.0]])


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


# --- best_k: many rows at once, as training's metrics rank ------------------------

def test_best_k_ranks_each_row_with_its_own_exclusions_and_pads_with_minus_one():
    scores = np.array([[0.5, 2.0, 1.0, 2.0],
                       [3.0, 3.0, 3.0, 3.0],
                       [1.0, 9.0, 8.0, 7.0]], dtype=np.float32)
    excluded = (np.array([0, 2, 2, 2]), np.array([1, 1, 2, 3]))  # row 0 loses item 1; row 2 all but item 0

    best = best_k(scores, 3, excluded)

    assert best.tolist() == [[3, 2, 0], [0, 1, 2], [0, -1, -1]]
    assert scores[0, 1] == 2.0  # the caller's scores are left alone


def test_best_k_returns_at_most_every_column():
    assert best_k(np.array([[1.0, 3.0]]), 5).tolist() == [[1, 0]]
    assert best_k(np.zeros((2, 3)), 0).shape == (2, 0)


def test_serving_and_metrics_rank_alike_even_with_many_ties():
    """One top-k for both: an item's place in an offline list is its place in the API's answer."""
    rng = np.random.default_rng(7)
    scores = rng.integers(0, 4, size=(50, 30)).astype(np.float64)  # few distinct values: ties everywhere
    excluded = np.flatnonzero(rng.random(30) < 0.2)
    rows = np.repeat(np.arange(50), excluded.shape[0])

    batch = best_k(scores, 7, (rows, np.tile(excluded, 50)))

    for row in range(50):
        assert top_n(scores[row], 7, exclude=excluded)[0].tolist() == batch[row].tolist()


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
