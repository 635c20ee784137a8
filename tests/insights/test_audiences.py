"""Audiences: scores by hand on the tiny model, engaged and erased users left out, the erasure reads.

Tiny model (tests.support.tiny_artifact): users u0 = (1,0) saw i3; u1 = (0,1) saw nothing; u2 = (1,1) saw
i0 and i2. Items i0..i3 = (1,0), (0,1), (1,1), (2,0); training cutoff 2026-01-01.
Audience of i0: u0 1, u1 0, u2 1 (u2 engaged). Of {i1, i2} (mean (0.5, 1)): u0 0.5, u1 1, u2 1.5 (u2 engaged).
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.catalog.rules import check_catalog_item
from chalicelib.errors import CategoryNotFound, EventLogUnavailable, ItemNotFound
from chalicelib.exports import erased_since
from chalicelib.insights.audiences import (
    Audiences,
    audience_scores,
    category_target,
    engaged_users,
    item_target,
    top_unerased,
)
from chalicelib.serving.recommender import Recommender

CUTOFF = datetime(2026, 1, 1, tzinfo=timezone.utc)


def ranked(answer: dict) -> list[tuple[str, float]]:
    return [(user["user_id"], user["score"]) for user in answer["users"]]


@pytest.fixture
def model(make_tiny_artifact):
    return Recommender(make_tiny_artifact())


def test_an_items_engaged_users_are_found_across_users_without_interactions(make_tiny_artifact):
    artifact = make_tiny_artifact()  # seen_indptr [0, 1, 1, 3]: u1's row is empty

    def engaged(rows):
        mask = engaged_users(artifact.seen_indptr, artifact.seen_indices, np.array(rows), artifact.n_items)
        return [str(user) for user in artifact.user_ids[mask]]

    assert engaged([0]) == ["u2"]
    assert engaged([3]) == ["u0"]
    assert engaged([1]) == []
    assert engaged([2, 3]) == ["u0", "u2"]


def test_item_scores_are_the_models_predictions_and_engaged_users_get_minus_infinity(model):
    scores, engaged = audience_scores(model.artifact, item_target(model, "i0"), include_engaged=False)
    assert scores.tolist() == [1.0, 0.0, -np.inf] and engaged == 1
    scores, engaged = audience_scores(model.artifact, item_target(model, "i0"), include_engaged=True)
    assert scores.tolist() == [1.0, 0.0, 1.0] and engaged == 1
    with pytest.raises(ItemNotFound):
        item_target(model, "nope")


def test_the_best_users_come_first_ties_to_the_lower_row():
    scores = np.array([1.0, 3.0, 1.0, -np.inf, 2.0], dtype=np.float32)
    rows, erased = top_unerased(scores, 10, np.array(["a", "b", "c", "d", "e"]), None, None)
    assert rows.tolist() == [1, 4, 0, 2] and erased == 0  # never a -inf (engaged) user, even below n


def test_erased_candidates_are_replaced_by_reading_further_down():
    scores = np.arange(50, dtype=np.float32)
    user_ids = np.array([f"u{row:02d}" for row in range(50)])
    erased = {f"u{row:02d}": datetime(2026, 6, 1, tzinfo=timezone.utc) for row in range(35, 50)}  # the 15 best
    asked: list[list[str]] = []

    def erasures(ids):
        asked.append(ids)
        return {user: erased[user] for user in ids if user in erased}

    rows, passed_over = top_unerased(scores, 5, user_ids, erasures, CUTOFF, first_read=6)

    assert rows.tolist() == [34, 33, 32, 31, 30] and passed_over == 15
    assert [len(ids) for ids in asked] == [6, 6, 12]  # each marker read once, twice as many each round
    assert asked[0] == [f"u{row}" for row in range(49, 43, -1)]


def test_by_default_n_and_a_tenth_more_candidates_are_read_at_least_ten_more():
    scores = np.arange(2000, dtype=np.float32)
    user_ids = np.array([str(row) for row in range(2000)])
    asked: list[int] = []

    def erasures(ids):
        asked.append(len(ids))
        return {}

    for n in (1, 100, 1000):
        top_unerased(scores, n, user_ids, erasures, CUTOFF)
    assert asked == [11, 110, 1100]


def test_only_users_erased_since_the_cutoff_are_left_out():
    erased_at = {"after": datetime(2026, 2, 1, tzinfo=timezone.utc), "before": datetime(2025, 12, 1, tzinfo=timezone.utc)}
    users = ["after", "before", "never"]
    assert erased_since(erased_at, users, CUTOFF).tolist() == [True, False, False]
    assert erased_since(erased_at, users, None).tolist() == [True, True, False]  # no cutoff: every erased user


@pytest.fixture
def audiences(resources, make_tiny_artifact):
    resources.model_registry.publish(make_tiny_artifact())
    resources.catalog.put([check_catalog_item(fields, item_id=item_id) for item_id, fields in (
        ("i1", {"title": "One", "categories": ["Even", "Odd"]}),
        ("i2", {"title": "Two", "categories": ["Éven"]}),
        ("i3", {"title": "Three", "categories": ["Odd", "Blocked"], "blocked": True}))])
    return resources.audiences


def test_an_item_audience_leaves_engaged_users_out_unless_asked(audiences):
    answer = audiences.for_item("i0", 10, include_engaged=False)
    assert ranked(answer) == [("u0", 1.0), ("u1", 0.0)]
    assert (answer["item_id"], answer["engaged_users"], answer["include_engaged"]) == ("i0", 1, False)
    assert answer["model_version"]
    assert ranked(audiences.for_item("i0", 10, include_engaged=True)) == [("u0", 1.0), ("u2", 1.0), ("u1", 0.0)]
    assert ranked(audiences.for_item("i0", 1, include_engaged=True)) == [("u0", 1.0)]


def test_a_category_scores_users_by_their_mean_score_over_its_items(audiences):
    answer = audiences.for_category("even", 10, include_engaged=False)  # i1 and i2: case and accents folded

    assert ranked(answer) == [("u1", 1.0), ("u0", 0.5)]  # u2 (1.5) saw i2
    assert (answer["category"], answer["category_items"], answer["engaged_users"]) == ("even", 2, 1)
    assert ranked(audiences.for_category("even", 10, include_engaged=True)) == [("u2", 1.5), ("u1", 1.0), ("u0", 0.5)]


def test_a_categorys_blocked_items_do_not_count_and_an_empty_category_is_not_found(audiences, resources):
    assert audiences.for_category("Odd", 10, include_engaged=True)["category_items"] == 1  # i1, not blocked i3
    for category in ("Blocked", "Nothing"):
        with pytest.raises(CategoryNotFound):
            audiences.for_category(category, 10, include_engaged=False)
    with pytest.raises(CategoryNotFound):
        category_target(resources.live_model.recommender(), resources.item_filters, "Nothing")


def test_a_user_erased_since_training_never_appears(audiences, resources):
    resources.event_log.erase("u1")

    assert ranked(audiences.for_item("i1", 10, include_engaged=True)) == [("u2", 1.0), ("u0", 0.0)]
    assert ranked(audiences.for_category("Even", 10, include_engaged=True)) == [("u2", 1.5), ("u0", 0.5)]


class _SilentEventLog:
    def erasures(self, user_ids, deadline=None):
        raise EventLogUnavailable("the event log did not answer in time")


def test_without_the_erasure_markers_there_is_no_audience(audiences, resources):
    blind = Audiences(resources.live_model, resources.item_filters, _SilentEventLog())
    with pytest.raises(EventLogUnavailable):
        blind.for_item("i0", 10, include_engaged=False)
