"""ItemSearch on hand-checkable factors: exact search, its rules, cosine scaling, and the approximate path."""

from __future__ import annotations

import numpy as np

from chalicelib.serving.approximate import InvertedFileIndex
from chalicelib.serving.search import ItemSearch

# Four items in two lists: rows 0-1 point along x, rows 2-3 along y; row 1 and row 3 are long.
FACTORS = np.array([[1.0, 0.0], [3.0, 0.1], [0.0, 1.0], [0.1, 3.0]], dtype=np.float32)
BY_AXIS = InvertedFileIndex(np.array([[2.0, 0.05], [0.05, 2.0]], dtype=np.float32),
                            np.array([0, 2, 4]), probes=1)
NOTHING = np.empty(0, dtype=np.int64)


def test_exact_search_ranks_by_inner_product_without_excluded_or_disallowed_rows():
    search = ItemSearch(FACTORS)
    query = np.array([1.0, 1.0], dtype=np.float32)

    rows, scores = search.best(query, 4, NOTHING, None)
    assert rows.tolist() == [1, 3, 0, 2]  # 3.1, 3.1, 1, 1: ties go to the lower row
    assert np.allclose(scores, [3.1, 3.1, 1.0, 1.0])
    assert search.best(query, 4, np.array([1]), None)[0].tolist() == [3, 0, 2]
    allowed = np.array([True, False, True, True])
    assert search.best(query, 2, NOTHING, allowed)[0].tolist() == [3, 0]


def test_cosine_search_divides_by_each_rows_length():
    search = ItemSearch(FACTORS)

    rows, scores = search.best(search.unit_query(0), 3, np.array([0]), None, cosine=True)
    # Row 1 (3, 0.1) is nearly parallel to row 0; its length does not count.
    assert rows.tolist() == [1, 3, 2]
    assert np.allclose(scores, [3.0 / np.hypot(3.0, 0.1), 0.1 / np.hypot(0.1, 3.0), 0.0])


def test_the_approximate_path_scores_only_the_best_list_and_falls_back_when_it_runs_short():
    search = ItemSearch(FACTORS, BY_AXIS)
    along_x = np.array([1.0, 0.2], dtype=np.float32)

    # The x list alone is scored: rows 1 (3.02) and 0 (1.0).
    assert search.best(along_x, 2, NOTHING, None)[0].tolist() == [1, 0]
    # With row 0 excluded one row of that list is left for n = 2: exact search answers, row 3 (0.7) second.
    assert search.best(along_x, 2, np.array([0]), None)[0].tolist() == [1, 3]
