"""Held-out splits: what is held out, what stays in training, and that nothing leaks between them."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.training.interactions import InteractionTable
from chalicelib.training.splits import MAX_TIED_SHARE, RANDOM, TIME, SplitOutcome, split, stratified_split, time_split

DAY0 = np.datetime64("2026-01-01", "ms")


def table_of(rows: list[tuple[str, str, float, int]]) -> InteractionTable:
    """An interaction table from (user, item, value, day) rows, one per pair."""
    user_ids = np.array(sorted({row[0] for row in rows}))
    item_ids = np.array(sorted({row[1] for row in rows}))
    return InteractionTable(
        users=np.searchsorted(user_ids, [row[0] for row in rows]).astype(np.int32),
        items=np.searchsorted(item_ids, [row[1] for row in rows]).astype(np.int32),
        values=np.array([row[2] for row in rows], dtype=np.float32),
        last_times=np.array([DAY0 + np.timedelta64(row[3], "D") for row in rows], dtype="datetime64[ms]"),
        user_ids=user_ids,
        item_ids=item_ids,
    )


def rows_of(table: InteractionTable) -> list[tuple[str, str, float, int]]:
    """The table's rows back as sorted (user, item, value, day) tuples."""
    days = ((table.last_times - DAY0) // np.timedelta64(1, "D")).astype(int)
    return sorted(
        (str(table.user_ids[u]), str(table.item_ids[i]), float(v), int(d))
        for u, i, v, d in zip(table.users, table.items, table.values, days)
    )


def pairs(table: InteractionTable) -> set[tuple[str, str]]:
    return {(user, item) for user, item, _, _ in rows_of(table)}


def held_by_user(test: InteractionTable) -> dict[str, list[str]]:
    """user -> held-out items, in item order."""
    held: dict[str, list[str]] = {}
    for user, item, _, _ in rows_of(test):
        held.setdefault(user, []).append(item)
    return held


# u0: five positives whose times are not in item order (latest: c on day 9, then e on day 7),
#     and a dislike on day 10, later than all of them.
# u1: two positives; u2: one positive; u3: only a dislike; u4: ten positives on days 0..9.
SMALL = table_of(
    [("u0", "a", 1, 3), ("u0", "b", 2, 1), ("u0", "c", 1, 9), ("u0", "d", 4, 5), ("u0", "e", 1, 7),
     ("u0", "x", -4, 10),
     ("u1", "a", 1, 2), ("u1", "b", 1, 4),
     ("u2", "a", 8, 6),
     ("u3", "b", -4, 8)]
    + [("u4", f"i{day}", 1, day) for day in range(10)]
)


@pytest.mark.parametrize(("fraction", "expected"), [
    # floor(0.2·5) = 1, floor(0.2·2) = 0 -> at least 1, floor(0.2·1) = 0, floor(0.2·10) = 2
    (0.2, {"u0": ["c"], "u1": ["b"], "u4": ["i8", "i9"]}),
    # floor(0.5·5) = 2, floor(0.5·2) = 1, floor(0.5·1) = 0, floor(0.5·10) = 5
    (0.5, {"u0": ["c", "e"], "u1": ["b"], "u4": ["i5", "i6", "i7", "i8", "i9"]}),
    # everything asked: 5 -> 4, 2 -> 1, 1 -> 0, 10 -> 9; every user keeps one positive
    (1.0, {"u0": ["a", "c", "d", "e"], "u1": ["b"], "u4": [f"i{day}" for day in range(1, 10)]}),
])
def test_time_split_holds_out_each_users_latest_positive_interactions(fraction, expected):
    train, test = time_split(SMALL, fraction)

    assert held_by_user(test) == expected
    assert all(value > 0 for _, _, value, _ in rows_of(test))


def test_time_split_keeps_negatives_and_single_interactions_in_training():
    train, test = time_split(SMALL, 1.0)

    train_rows = rows_of(train)
    assert ("u0", "x", -4.0, 10) in train_rows  # the latest event of u0, but a dislike
    assert ("u3", "b", -4.0, 8) in train_rows
    assert ("u2", "a", 8.0, 6) in train_rows  # a single positive is never held out
    assert {user for user, _, value, _ in train_rows if value > 0} == {"u0", "u1", "u2", "u4"}


@pytest.mark.parametrize("method", [TIME, RANDOM])
@pytest.mark.parametrize("fraction", [0.2, 0.5, 1.0])
def test_train_and_test_partition_the_table(method, fraction):
    train, test, _ = split(SMALL, method, fraction, seed=3)

    assert pairs(train) & pairs(test) == set()
    assert sorted(rows_of(train) + rows_of(test)) == rows_of(SMALL)
    # Both parts keep the full id arrays, so their matrices line up.
    assert train.to_matrix().matrix.shape == test.to_matrix().matrix.shape == (5, 16)  # users u0..u4; items a..e, x, i0..i9


# 12 users, each with 20 positives (items p00..p19, days 0..19) and 2 dislikes.
WIDE = table_of(
    [(f"u{user:02d}", f"p{item:02d}", 1 + item % 3, item) for user in range(12) for item in range(20)]
    + [(f"u{user:02d}", f"n{item}", -4, 30) for user in range(12) for item in range(2)]
)


def test_stratified_split_holds_out_the_fraction_of_each_users_positives():
    train, test = stratified_split(WIDE, 0.25, seed=1)

    # 20 positives, round(0.75 · 20) = 15 kept -> 5 held out per user; dislikes never held out.
    assert {user: len(items) for user, items in held_by_user(test).items()} == {f"u{u:02d}": 5 for u in range(12)}
    assert all(item.startswith("p") for _, item in pairs(test))
    assert len(train) == 12 * (15 + 2)


def test_stratified_split_is_seeded():
    _, first = stratified_split(WIDE, 0.25, seed=1)
    _, again = stratified_split(WIDE, 0.25, seed=1)
    _, other = stratified_split(WIDE, 0.25, seed=2)

    assert rows_of(first) == rows_of(again)
    assert pairs(first) != pairs(other)
    # Random, not the latest: some held-out item is not among a user's 5 latest (p15..p19).
    assert any(int(item[1:]) < 15 for _, item in pairs(first))


def test_stratified_split_keeps_at_least_one_positive():
    # u2 has one positive: round(0.75 · 1) = 1 kept, nothing held out; u1 has two: round(1.5) = 2 kept.
    train, test = stratified_split(SMALL, 0.25, seed=5)

    held = held_by_user(test)
    assert "u2" not in held and "u1" not in held and "u3" not in held
    assert len(held["u0"]) == 5 - round(0.75 * 5)  # 5 - 4 = 1
    assert len(held["u4"]) == 10 - round(0.75 * 10)  # 10 - 8 = 2 (7.5 rounds to even)


@pytest.mark.parametrize("method", [TIME, RANDOM])
def test_a_validation_split_of_training_never_contains_test_rows(method):
    train, test, _ = split(WIDE, method, 0.25, seed=7)
    inner, validation, _ = split(train, method, 0.25, seed=8)

    assert len(validation) > 0
    assert pairs(validation) & pairs(test) == set()
    assert pairs(validation) <= pairs(train)
    assert sorted(rows_of(inner) + rows_of(validation)) == rows_of(train)
    if method == TIME:
        # Test holds each user's 5 latest positives (p15..p19), validation the 3 latest of the rest
        # (floor(0.25 · 15) = 3: p12..p14).
        assert {item for _, item in pairs(test)} == {f"p{i}" for i in range(15, 20)}
        assert {item for _, item in pairs(validation)} == {"p12", "p13", "p14"}


def test_unknown_split_method_is_refused():
    with pytest.raises(InvalidTrainingOptions, match="unknown split"):
        split(SMALL, "latest", 0.2, 0)


# --- timestamps that cannot order the interactions ---------------------------------------------------


def same_day(table: InteractionTable, users: set[str] | None = None) -> InteractionTable:
    """*table* with every interaction of *users* (all when None) on day 0, as a bulk import stamps them."""
    chosen = np.isin(table.user_ids[table.users], sorted(users)) if users is not None else np.ones(len(table), bool)
    return InteractionTable(table.users, table.items, table.values, np.where(chosen, DAY0, table.last_times),
                            table.user_ids, table.item_ids)


def test_a_time_split_on_distinct_times_reports_no_tie():
    _, _, outcome = split(WIDE, TIME, 0.25, seed=7)
    assert outcome == SplitOutcome(TIME, TIME, held_out=60, tied=0)
    assert outcome.reason is None


def test_ties_are_broken_at_random_with_the_seed():
    # Two of the twelve users (under MAX_TIED_SHARE) did everything on one day: their held-out items are
    # drawn by the seed, no longer the first rows of the table.
    table = same_day(WIDE, {"u00", "u01"})
    held_by_seed = {seed: held_by_user(split(table, TIME, 0.25, seed)[1]) for seed in range(6)}
    outcome = split(table, TIME, 0.25, seed=0)[2]
    assert (outcome.used, outcome.tied, outcome.held_out) == (TIME, 10, 60)  # 5 held out of each user's 20
    assert outcome.tied_share < MAX_TIED_SHARE
    assert held_by_user(split(table, TIME, 0.25, 0)[1]) == held_by_seed[0]
    assert len({tuple(held["u00"]) for held in held_by_seed.values()}) > 1
    for held in held_by_seed.values():
        assert len(held["u00"]) == 5 and held["u02"] == [f"p{i}" for i in range(15, 20)]  # others: by time


def test_identical_timestamps_give_the_stratified_split_and_say_why():
    table = same_day(WIDE)
    train, test, outcome = split(table, TIME, 0.25, seed=7)
    expected_train, expected_test = stratified_split(table, 0.25, seed=7)
    assert rows_of(train) == rows_of(expected_train) and rows_of(test) == rows_of(expected_test)
    assert (outcome.requested, outcome.used, outcome.tied, outcome.held_out) == (TIME, RANDOM, 60, 60)
    assert "timestamps cannot order the interactions" in outcome.reason and "60 of the 60 held-out" in outcome.reason
    assert outcome.as_dict()["tied_share"] == 1.0


def test_the_random_split_is_never_questioned():
    assert split(same_day(WIDE), RANDOM, 0.25, seed=7)[2] == SplitOutcome(RANDOM, RANDOM)


def test_a_few_ties_at_the_boundary_keep_the_time_split():
    # Like MovieLens, where users rate several films in one second: every user's boundary is inside a tie
    # of two (days 14 and 15 equal), but time still decides the other four of their five held-out rows.
    rows = [(f"u{user:02d}", f"p{item:02d}", 1.0, min(item, 14) if item == 15 else item)
            for user in range(12) for item in range(20)]
    _, test, outcome = split(table_of(rows), TIME, 0.25, seed=7)
    assert (outcome.used, outcome.tied, outcome.held_out) == (TIME, 12, 60)
    assert outcome.tied_share == pytest.approx(0.2)
    assert all(set(held) >= {"p16", "p17", "p18", "p19"} for held in held_by_user(test).values())
