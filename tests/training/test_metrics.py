"""Offline ranking metrics, coverage and the top-k helpers, on inputs small enough to check by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from chalicelib.training.metrics import catalog_coverage, popularity_top_k, ranking_metrics, top_k


def held_out(rows: list[list[int]], n_items: int) -> sp.csr_matrix:
    """A CSR test matrix: row u holds 1 at each item of rows[u]."""
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for user, items in enumerate(rows):
        dense[user, items] = 1
    return sp.csr_matrix(dense)


# --- ranking metrics ------------------------------------------------------------------------------

# k = 3, 9 items.
# u0: recommended 0, 1, 2; held out {0, 2}        -> hits 1, 0, 1
# u1: recommended 3, 4, -1 (padded); held out {4, 5, 6, 7, 8}: more than k, and item 8 is the
#     last column, the one a -1 index would wrongly look up -> hits 0, 1, 0
# u2: recommended 0, 1, 2; nothing held out       -> not evaluated at all
RECOMMENDED = np.array([[0, 1, 2], [3, 4, -1], [0, 1, 2]])
TEST = held_out([[0, 2], [4, 5, 6, 7, 8], []], 9)
LOG2_3 = math.log2(3)
# precision: u0 2/3, u1 1/3                    -> mean 1/2
# recall:    u0 2/2, u1 1/5                    -> mean 0.6
# nDCG:      u0 (1/log2 2 + 1/log2 4) / (1 + 1/log2 3)           = 1.5 / 1.63093 = 0.91972
#            u1 (1/log2 3) / (1 + 1/log2 3 + 1/log2 4): ideal of min(k, 5) = 3 hits = 0.63093 / 2.13093 = 0.29608
# MAP:       u0 (1/1 + 2/3) / |test| 2 = 0.83333; u1 (1/2) / |test| 5 = 0.1 -> mean 0.46667
U0_NDCG = 1.5 / (1 + 1 / LOG2_3)
U1_NDCG = (1 / LOG2_3) / (1 + 1 / LOG2_3 + 0.5)


def test_ranking_metrics_by_hand():
    metrics = ranking_metrics(RECOMMENDED, TEST, 3)

    assert metrics == {
        "precision@3": pytest.approx(0.5),
        "recall@3": pytest.approx(0.6),
        "ndcg@3": pytest.approx((U0_NDCG + U1_NDCG) / 2),
        "map@3": pytest.approx((5 / 6 + 0.1) / 2),
    }
    assert metrics["ndcg@3"] == pytest.approx(0.60790, abs=1e-5)  # (0.91972 + 0.29608) / 2


def test_a_user_without_held_out_items_does_not_change_the_averages():
    with_u2 = ranking_metrics(RECOMMENDED, TEST, 3)
    without_u2 = ranking_metrics(RECOMMENDED[:2], TEST[:2], 3)

    assert with_u2 == pytest.approx(without_u2)


def test_padding_never_counts_as_a_hit():
    # Only padding recommended, while the last item (index -1 from the end) is held out.
    metrics = ranking_metrics(np.array([[-1, -1, -1]]), held_out([[8]], 9), 3)

    assert metrics == {"precision@3": 0.0, "recall@3": 0.0, "ndcg@3": 0.0, "map@3": 0.0}


def test_a_perfect_list_scores_one_even_with_more_held_out_items_than_k():
    # Held out {0..4}, k = 3, recommended 0, 1, 2: every slot a hit, the ideal of 3 hits is reached.
    metrics = ranking_metrics(np.array([[0, 1, 2]]), held_out([[0, 1, 2, 3, 4]], 5), 3)

    assert metrics["precision@3"] == pytest.approx(1.0)
    assert metrics["ndcg@3"] == pytest.approx(1.0)
    assert metrics["recall@3"] == pytest.approx(3 / 5)
    assert metrics["map@3"] == pytest.approx((1 + 1 + 1) / 5)  # MAP divides by |test| = 5


def test_only_the_first_k_columns_count():
    # A hit at position 4 is outside the top 3.
    metrics = ranking_metrics(np.array([[1, 2, 3, 0]]), held_out([[0]], 4), 3)

    assert metrics["precision@3"] == 0.0 and metrics["ndcg@3"] == 0.0


def test_no_evaluated_user_gives_zeros():
    metrics = ranking_metrics(np.array([[0, 1]]), held_out([[]], 3), 2)

    assert metrics == {"precision@2": 0.0, "recall@2": 0.0, "ndcg@2": 0.0, "map@2": 0.0}


# Regression: a catalogue smaller than k gave lists shorter than k and a broadcast error.
def test_lists_shorter_than_k_count_like_padding():
    # 2 items, k = 3: the list [0, 1] is the list [0, 1, -1]. Held out {1}: one hit at rank 2.
    # precision 1/3, recall 1, nDCG (1/log2 3) / 1, MAP (1/2) / 1.
    short = ranking_metrics(np.array([[0, 1]]), held_out([[1]], 2), 3)
    padded = ranking_metrics(np.array([[0, 1, -1]]), held_out([[1]], 2), 3)

    assert short == pytest.approx(padded)
    assert short["precision@3"] == pytest.approx(1 / 3)
    assert short["ndcg@3"] == pytest.approx(1 / LOG2_3)


# --- coverage -------------------------------------------------------------------------------------


def test_catalog_coverage_counts_distinct_items_shown_and_ignores_padding():
    # Shown: 0, 1, 2, 4 (4 twice, -1 padding ignored) out of 10 items -> 0.4.
    assert catalog_coverage(np.array([[0, 1, 2], [4, 4, -1]]), 10) == pytest.approx(0.4)
    assert catalog_coverage(np.array([[-1, -1]]), 10) == 0.0
    assert catalog_coverage(np.empty((0, 3), dtype=np.int64), 0) == 0.0


# --- top-k ---------------------------------------------------------------------------------------

# Items i0..i3 have factors (1,0), (1,0), (0,1), (2,0).
ITEMS = np.array([[1, 0], [1, 0], [0, 1], [2, 0]], dtype=np.float32)


def test_top_k_ranks_by_dot_product_excludes_training_items_and_breaks_ties_by_index():
    users = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    # u0 (1,0): scores 1, 1, 0, 2; i3 is excluded -> i0, i1 tie at 1 (lower index first), then i2.
    # u1 (0,1): scores 0, 0, 1, 0; i3 excluded -> i2, then i0, i1 tied at 0 -> i0, i1.
    # u2 (1,1): scores 1, 1, 1, 2; i0, i1, i2 excluded -> i3, then nothing left: -1 padding.
    exclude = held_out([[3], [3], [0, 1, 2]], 4)

    best = top_k(users, ITEMS, exclude, 3)

    assert best.tolist() == [[0, 1, 2], [2, 0, 1], [3, -1, -1]]
    assert top_k(users, ITEMS, exclude, 3).tolist() == best.tolist()  # the same every time


def test_top_k_returns_at_most_the_catalog_and_works_in_batches():
    users = np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32)
    exclude = held_out([[], [], []], 4)

    whole = top_k(users, ITEMS, exclude, 10)
    batched = top_k(users, ITEMS, exclude, 10, batch=2)

    assert whole.shape == (3, 4)
    # u0: 1, 1, 0, 2 -> i3, i0, i1, i2; u1: 0, 0, 1, 0 -> i2, i0, i1, i3; u2: 1, 1, 1, 2 -> i3, i0, i1, i2.
    assert whole.tolist() == [[3, 0, 1, 2], [2, 0, 1, 3], [3, 0, 1, 2]]
    assert batched.tolist() == whole.tolist()


def test_popularity_top_k_most_popular_first_without_the_users_items():
    popularity = np.array([5, 1, 3, 2], dtype=np.float32)
    # u0 saw i0 -> i2 (3), i3 (2), i1 (1); u1 saw nothing -> i0, i2, i3; u2 saw i0, i2, i3 -> i1 then padding.
    exclude = held_out([[0], [], [0, 2, 3]], 4)

    assert popularity_top_k(popularity, exclude, 3).tolist() == [[2, 3, 1], [0, 2, 3], [1, -1, -1]]


def test_popularity_ties_are_ordered_by_index():
    # i0 and i1 tie at 2 and i2, i3 at 1.
    popularity = np.array([2, 2, 1, 1], dtype=np.float32)

    assert popularity_top_k(popularity, held_out([[]], 4), 4).tolist() == [[0, 1, 2, 3]]


# Regression: argpartition kept an arbitrary subset of the items tied at the cut.
def test_ties_at_the_cut_keep_the_lower_indices():
    # Served lists break ties by the lower index (recommender.top_n); offline evaluation must rank alike.
    popularity = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 2], dtype=np.float32)

    assert popularity_top_k(popularity, held_out([[]], 10), 3).tolist() == [[9, 0, 1]]


# popularity_top_k finds each user's places in one shared order instead of ranking a row per user:
# it must give exactly what ranking every user's row (excluded items at -inf) gives.
@pytest.mark.parametrize("seed", range(40))
def test_popularity_top_k_equals_ranking_every_users_row(seed):
    rng = np.random.default_rng(seed)
    n_users, n_items, k = int(rng.integers(1, 12)), int(rng.integers(1, 25)), int(rng.integers(1, 12))
    popularity = rng.integers(0, 4, n_items).astype(np.float32)  # many ties
    seen = [sorted(rng.choice(n_items, int(rng.integers(0, n_items + 1)), replace=False).tolist())
            for _ in range(n_users)]
    exclude = held_out(seen, n_items)
    scores = np.tile(popularity, (n_users, 1))
    expected = top_k(np.eye(n_users, dtype=np.float32), scores.T.copy(), exclude, k)

    assert popularity_top_k(popularity, exclude, k).tolist() == expected.tolist()
