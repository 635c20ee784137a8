"""Ranking maths, checked against numbers worked out by hand: top-k with exclusions and ties, fold-in.

Tiny item factors (rows i0..i3): (1,0), (0,1), (1,1), (2,0); their gram YᵀY = [[6, 1], [1, 2]].
"""

from __future__ import annotations

import numpy as np

from chalicelib.serving.ranking import activity_weight, best_k, fold_in, score_contributions, top_n

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


def test_spark_conventions_add_one_to_confidences_and_scale_lambda_by_positive_interactions():
    # alpha 1, λ 0.1: c0 = c3 = 1 + 1 = 2; two positive interactions, so λ becomes 0.2.
    # A = G + 0.2I + (2-1)(y0y0ᵀ + y3y3ᵀ) = [[6.2,1],[1,2.2]] + [[5,0],[0,0]] = [[11.2,1],[1,2.2]], det 23.64;
    # b = 2*(1,0) + 2*(2,0) = (6,0); x = (2.2*6, -1*6) / 23.64 = (13.2, -6) / 23.64.
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 3]), np.array([1.0, 1.0]), 0.1, alpha=1.0,
                confidence_offset=1.0, scale_regularization=True)
    np.testing.assert_allclose(x, np.array([13.2, -6.0]) / 23.64, rtol=1e-6)


def test_spark_conventions_count_only_positive_interactions_and_keep_negatives_out_of_b():
    # alpha 2, λ 0.1: c0 = 1 + 2 = 3, c2 = -(1 + 2) = -3; one positive interaction, so λ stays 0.1.
    # A = [[6.1,1],[1,2.1]] + 2*y0y0ᵀ + 2*y2y2ᵀ = [[10.1,3],[3,4.1]], det 32.41; b = 3*y0 = (3,0);
    # x = (4.1*3, -3*3) / 32.41 = (12.3, -9) / 32.41.
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 2]), np.array([1.0, -1.0]), 0.1, alpha=2.0,
                confidence_offset=1.0, scale_regularization=True)
    np.testing.assert_allclose(x, np.array([12.3, -9.0]) / 32.41, rtol=1e-6)
    rows, contributions = score_contributions(TINY_ITEMS, TINY_GRAM, np.array([0, 2]), np.array([1.0, -1.0]), 0.1,
                                              2.0, np.array([1, 3]), confidence_offset=1.0,
                                              scale_regularization=True)
    np.testing.assert_allclose(contributions.sum(axis=0), TINY_ITEMS[[1, 3]] @ x, rtol=1e-6)
    assert contributions[rows.tolist().index(2)].tolist() == [0.0, 0.0]


def test_activity_weight_is_the_count_over_the_reference_to_minus_the_exponent():
    # (count / 4) ** -0.5, a count of 0 taken as 1: 1/4 -> 2, 4/4 -> 1, 16/4 -> 0.5.
    np.testing.assert_allclose(activity_weight(np.array([0, 1, 4, 16]), 4.0, 0.5), [2.0, 2.0, 1.0, 0.5])
    assert activity_weight(7, 4.0, 0.0) == 1.0


def test_an_activity_exponent_scales_the_strengths_by_the_users_count_of_positive_items():
    # Two positives (i0, i3) and one negative (i2) at reference 8, exponent 1: weight (2/8)^-1 = 4, so the
    # fold-in is the one of strengths 4, 4 and -4; the negative item does not count as activity.
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 3, 2]), np.array([1.0, 1.0, -1.0]), 0.1, alpha=2.0,
                activity_exponent=1.0, activity_reference=8.0)
    expected = fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 3, 2]), np.array([4.0, 4.0, -4.0]), 0.1, alpha=2.0)
    np.testing.assert_allclose(x, expected, rtol=1e-12)
    assert not np.allclose(x, fold_in(TINY_ITEMS, TINY_GRAM, np.array([0, 3, 2]), np.array([1.0, 1.0, -1.0]), 0.1,
                                      alpha=2.0))
    rows, contributions = score_contributions(TINY_ITEMS, TINY_GRAM, np.array([0, 3, 2]), np.array([1.0, 1.0, -1.0]),
                                              0.1, 2.0, np.array([1]), activity_exponent=1.0, activity_reference=8.0)
    np.testing.assert_allclose(contributions.sum(axis=0), TINY_ITEMS[[1]] @ x, rtol=1e-9)


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


# --- top_n with an allowed mask (the business rules) ---------------------------------------------------

def test_top_n_rules_out_disallowed_entries_before_the_cut():
    allowed = np.array([False, True, False, True, True])
    indices, scores = top_n(np.array([9.0, 8.0, 7.0, 6.0, 5.0]), 2, allowed=allowed)
    assert indices.tolist() == [1, 3]  # two come back although the best and the third are ruled out
    assert scores.tolist() == [8.0, 6.0]
    assert allowed.tolist() == [False, True, False, True, True]  # the caller's mask is left alone


def test_top_n_combines_exclude_and_allowed():
    allowed = np.array([True, True, False, True])
    assert top_n(np.array([4.0, 3.0, 2.0, 1.0]), 4, exclude=np.array([0]), allowed=allowed)[0].tolist() == [1, 3]


def test_top_n_is_empty_when_nothing_is_allowed():
    indices, scores = top_n(np.array([1.0, 2.0]), 3, allowed=np.zeros(2, dtype=bool))
    assert indices.size == 0 and scores.size == 0


# --- score_contributions: the fold-in score, item by item ------------------------------------------------

def test_contributions_worked_out_by_hand_add_up_to_the_fold_in_score():
    # History i0, i3 (c=1 each): A = [[6.1,1],[1,2.1]], A⁻¹ = [[2.1,-1],[-1,6.1]] / 11.81.
    # Target i2=(1,1): A⁻¹y2 = (1.1, 5.1)/11.81 -> i0=(1,0) adds 1.1, i3=(2,0) adds 2.2; sum 3.3/11.81,
    # the fold-in score y2·x with x = (6.3,-3)/11.81. Target i1=(0,1): A⁻¹y1 = (-1, 6.1)/11.81 -> -1 and -2.
    rows, contributions = score_contributions(TINY_ITEMS, TINY_GRAM, np.array([3, 0]), np.array([1.0, 1.0]),
                                              0.1, 1.0, np.array([2, 1]))

    assert rows.tolist() == [0, 3]
    np.testing.assert_allclose(contributions, np.array([[1.1, -1.0], [2.2, -2.0]]) / 11.81, rtol=1e-6)
    x = fold_in(TINY_ITEMS, TINY_GRAM, np.array([3, 0]), np.array([1.0, 1.0]), 0.1, alpha=1.0)
    np.testing.assert_allclose(contributions.sum(axis=0), TINY_ITEMS[[2, 1]] @ x, rtol=1e-6)


def test_negative_feedback_contributes_nothing_though_it_shapes_the_score():
    # alpha 2: c0=2, c2=-2 -> A = [[8.1,2],[2,3.1]], det 21.11 (as in the fold-in test above).
    # Target i3=(2,0): A⁻¹y3 = (6.2,-4)/21.11; i0 adds 2*(1,0)·(6.2,-4)/21.11 = 12.4/21.11, i2 adds 0.
    rows, contributions = score_contributions(TINY_ITEMS, TINY_GRAM, np.array([0, 2]), np.array([1.0, -1.0]),
                                              0.1, 2.0, np.array([3]))

    assert rows.tolist() == [0, 2]
    np.testing.assert_allclose(contributions[:, 0], [12.4 / 21.11, 0.0], rtol=1e-6, atol=1e-12)


def test_repeated_history_items_contribute_once_with_their_summed_confidence():
    # [2, 2] at alpha 1 is c=2 on i2: A = [[7.1,2],[2,3.1]], det 18.01; target i1: A⁻¹y1 = (-2, 7.1)/18.01,
    # i2 adds 2*(1,1)·(-2,7.1)/18.01 = 10.2/18.01: the whole fold-in score of i1.
    rows, contributions = score_contributions(TINY_ITEMS, TINY_GRAM, np.array([2, 2]), np.array([1.0, 1.0]),
                                              0.1, 1.0, np.array([1]))
    assert rows.tolist() == [2]
    np.testing.assert_allclose(contributions, [[10.2 / 18.01]], rtol=1e-6)


def test_contributions_add_up_to_the_fold_in_score_of_every_target():
    rng = np.random.default_rng(5)
    items = rng.normal(size=(12, 3)).astype(np.float32)
    gram = items.T.astype(np.float64) @ items.astype(np.float64)
    history = np.array([0, 3, 3, 7, 9, 11, 11])
    values = np.array([1.0, 2.0, 1.0, -1.0, 0.5, 1.0, -3.0])  # i7 and i11 net negative, i3 repeated
    targets = np.arange(12)

    rows, contributions = score_contributions(items, gram, history, values, 0.05, 2.0, targets)

    x = fold_in(items, gram, history, values, 0.05, alpha=2.0)
    np.testing.assert_allclose(contributions.sum(axis=0), items.astype(np.float64) @ x, rtol=1e-9, atol=1e-12)
    negative = np.isin(rows, [7, 11])
    assert negative.sum() == 2 and not contributions[negative].any()
