"""IdIndex: external ids to model rows by binary search over the stored sorting order.

The hand-made ids below are stored unsorted, so a lookup that ignored the order
(or searched the ids as if they were sorted) would find the wrong rows.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.models.artifact import sorting_order
from chalicelib.serving.ids import IdIndex
from tests.strategies import PURE

#: Rows 0..5, unsorted; "ab" and "abc" extend "a", "b" is a prefix of nothing stored after it.
STORED = ["b", "abc", "a", "c", "ab", "é"]


def index_of(ids: list[str]) -> IdIndex:
    stored = np.asarray(ids, dtype=np.str_)
    return IdIndex(stored, sorting_order(stored))


def test_known_ids_get_their_rows_whatever_the_stored_order():
    index = index_of(STORED)
    assert index.rows(["a", "b", "c", "ab", "abc", "é"]).tolist() == [2, 0, 3, 4, 1, 5]
    assert [index.row(item_id) for item_id in STORED] == list(range(len(STORED)))


def test_unknown_ids_are_minus_one_among_known_ones():
    index = index_of(STORED)
    assert index.rows(["zzz", "a", "", "aa", "bb", "0"]).tolist() == [-1, 2, -1, -1, -1, -1]
    assert index.row("d") == -1


def test_an_id_longer_than_every_stored_one_is_unknown_not_a_truncated_match():
    # "abcd" cut to the stored width (3 characters) would read "abc", a stored id.
    index = index_of(STORED)
    assert index.rows(["abcd", "abc" + "x" * 300, "éé", "cc"]).tolist() == [-1, -1, -1, -1]
    assert "abcd" not in index


def test_ids_that_are_prefixes_of_others_find_their_own_row():
    index = index_of(["item-10", "item-1", "item-100", "item"])
    assert index.rows(["item", "item-1", "item-10", "item-100", "item-1000", "item-"]).tolist() == [3, 1, 0, 2, -1, -1]


def test_empty_input_and_empty_index_give_empty_or_unknown_rows():
    index = index_of(STORED)
    for nothing in ([], (), np.array([], dtype=np.str_)):
        rows = index.rows(nothing)
        assert rows.shape == (0,) and rows.dtype == np.int64
    empty = index_of([])
    assert len(empty) == 0
    assert empty.rows(["a", "b"]).tolist() == [-1, -1]
    assert "a" not in empty


def test_rows_accepts_arrays_and_returns_int64():
    index = index_of(STORED)
    rows = index.rows(np.array(["c", "nope", "abc"]))
    assert rows.dtype == np.int64 and rows.tolist() == [3, -1, 1]
    assert index.rows(np.array(["c", "ab"], dtype=object)).tolist() == [3, 4]


def test_membership_and_length():
    index = index_of(STORED)
    assert len(index) == 6
    assert "ab" in index and "é" in index
    assert "abcd" not in index and "" not in index
    assert 0 not in index and None not in index  # only strings are ids


# Ids of a few characters from a small alphabet collide and extend each other often; the rest is any
# text but NUL, which numpy strips from the end of a stored string (ids with control characters are
# refused at the API's edge, see chalicelib.eventlog.rules.check_id).
_ids = st.text(st.sampled_from("ab\u00e9\U0001F600-"), max_size=4) | st.text(
    st.characters(blacklist_characters="\x00"), max_size=6)


@PURE
@given(st.lists(_ids, unique=True, max_size=30), st.lists(_ids, max_size=30), st.data())
def test_rows_agree_with_a_plain_dict_lookup(stored, others, data):
    by_id = {item_id: row for row, item_id in enumerate(stored)}
    asked = others + (data.draw(st.lists(st.sampled_from(stored), max_size=10)) if stored else [])
    asked = data.draw(st.permutations(asked))
    index = index_of(stored)
    assert index.rows(asked).tolist() == [by_id.get(item_id, -1) for item_id in asked]
    assert [item_id in index for item_id in asked] == [item_id in by_id for item_id in asked]
