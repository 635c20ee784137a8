"""Explainer: a reason in plain words for each recommended item, naming only the person's own unblocked items.

The tiny model (see tests.support.tiny_artifact), with catalog titles i0 "Toy Story", i1 "Jumanji",
i2 "Aladdin", i3 "Heat". With A = YᵀY + 0.1·I = [[6.1, 1], [1, 2.1]] (every confidence 1),
A⁻¹ = [[2.1, -1], [-1, 6.1]] / 11.81, and the contribution of history item j to target t is
y_jᵀ A⁻¹ y_t (see tests/serving/test_recommender.py for the same numbers):

* u2 saw i0 and i2. Target i3: i0 adds 4.2, i2 adds 2.2 (/11.81). Target i1: i0 adds -1, i2 adds 5.1.
* A visitor who saw i0 and i3. Target i2: i3 adds 2.2, i0 adds 1.1. Target i1: -2 and -1 (nothing positive).
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.catalog.item import CatalogItem
from chalicelib.serving.explain import ExplainContext, Explainer, contributors
from chalicelib.serving.recommender import Recommender
from tests.support import tiny_artifact

TITLES = {"i0": "Toy Story", "i1": "Jumanji", "i2": "Aladdin", "i3": "Heat"}
CATALOG = {item_id: CatalogItem(item_id, title) for item_id, title in TITLES.items()}


@pytest.fixture
def tiny() -> Recommender:
    return Recommender(tiny_artifact())


def explain(answer, described=CATALOG, **context) -> dict[str, str]:
    explainer = Explainer(answer, ExplainContext(context.pop("recommender"), context.pop("verb", "watched"),
                                                 **context))
    return explainer.reasons(described)


# --- a person's own history --------------------------------------------------------------------------

def test_personal_items_are_explained_by_the_history_items_adding_most_to_their_score(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 10)
    assert answer.item_ids == ["i3", "i1"]

    explainer = Explainer(answer, ExplainContext(tiny, "watched"))

    assert explainer.items_to_describe() == ["i0", "i2"]
    assert explainer.reasons(CATALOG) == {
        "i3": "Because you watched Toy Story and Aladdin",  # i0 (4.2) before i2 (2.2)
        "i1": "Because you watched Aladdin",  # i0 adds a negative amount: not a reason
    }


def test_the_history_verb_is_the_configured_one(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 1)
    assert explain(answer, recommender=tiny, verb="bought") == {"i3": "Because you bought Toy Story and Aladdin"}


def test_at_most_two_items_are_named_and_untitled_ones_give_way(tiny):
    # Recent i0, i1, i3 (confidence 1 each): only i2 is left; it gains i1 5.1, i3 2.2, i0 1.1 (/11.81).
    profile = tiny.profile_for_user("nobody", ["i0", "i1", "i3"], [1.0, 1.0, 1.0])
    answer = tiny.recommend(profile, 10)
    assert answer.strategy == "realtime" and answer.item_ids == ["i2"]

    assert explain(answer, recommender=tiny) == {"i2": "Because you watched Jumanji and Heat"}
    untitled = {item_id: item for item_id, item in CATALOG.items() if item_id != "i1"}
    assert explain(answer, untitled, recommender=tiny) == {"i2": "Because you watched Heat and Toy Story"}


def test_without_any_titled_contributor_the_reason_is_generic(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 10)
    assert explain(answer, {}, recommender=tiny) == {"i3": "Picked for you", "i1": "Picked for you"}


def test_an_answer_made_from_the_model_only_is_explained_alike(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 1)
    model_only = replace(answer, strategy="personalized_model_only")
    assert explain(model_only, recommender=tiny) == {"i3": "Because you watched Toy Story and Aladdin"}


# --- blocked and hidden items are never named --------------------------------------------------------

def test_hidden_history_items_are_never_named_nor_read(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 10)
    explainer = Explainer(answer, ExplainContext(tiny, "watched", hidden=frozenset({"i0"})))

    assert explainer.items_to_describe() == ["i2"]
    assert explainer.reasons(CATALOG) == {"i3": "Because you watched Aladdin", "i1": "Because you watched Aladdin"}


def test_history_items_the_catalog_says_are_blocked_are_never_named(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 10)
    described = {**CATALOG, "i0": CatalogItem("i0", "Toy Story", blocked=True)}
    assert explain(answer, described, recommender=tiny) == {
        "i3": "Because you watched Aladdin", "i1": "Because you watched Aladdin"}


def test_an_answer_whose_only_contributor_is_hidden_is_explained_generically(tiny):
    answer = tiny.recommend(tiny.profile_for_user("u2"), 10)
    reasons = explain(answer, recommender=tiny, hidden=frozenset({"i0", "i2"}))
    assert reasons == {"i3": "Picked for you", "i1": "Picked for you"}


# --- a session ---------------------------------------------------------------------------------------

def test_session_items_are_explained_by_what_was_just_viewed(tiny):
    answer = tiny.recommend(tiny.profile_for_session(["i0", "i3"]), 10)
    assert answer.strategy == "session" and answer.item_ids == ["i2", "i1"]

    assert explain(answer, recommender=tiny) == {
        "i2": "Because you just viewed Heat and Toy Story",  # i3 (2.2) before i0 (1.1)
        "i1": "Goes with what you just viewed",  # no item adds a positive amount
    }


# --- a chat conversation ------------------------------------------------------------------------------

@pytest.mark.parametrize(("liked", "reason"), [
    ({"i3"}, "Because you liked Heat"),  # the strongest is liked: only liked items are named
    ({"i0"}, "Because you watched Heat"),  # the strongest is history: only history items are named
    ({"i0", "i3"}, "Because you liked Heat and Toy Story"),
    (set(), "Because you watched Heat and Toy Story"),
])
def test_items_liked_in_a_conversation_are_explained_as_liked(tiny, liked, reason):
    answer = tiny.recommend(tiny.profile_for_user("nobody", ["i0", "i3"], [1.0, 1.0]), 1)
    assert answer.strategy == "realtime" and answer.item_ids == ["i2"]
    assert explain(answer, recommender=tiny, liked_in_conversation=frozenset(liked)) == {"i2": reason}


# --- answers that explain themselves ----------------------------------------------------------------

def test_similar_items_name_the_item_they_resemble(tiny):
    answer = tiny.similar_items("i0", 3)
    explainer = Explainer(answer, ExplainContext(tiny, "watched", similar_to="i0"))

    assert explainer.items_to_describe() == ["i0"]
    assert explainer.reasons(CATALOG) == {item_id: "Similar to Toy Story" for item_id in ["i3", "i2", "i1"]}


def test_similar_items_never_name_a_blocked_item_by_its_title(tiny):
    answer = tiny.similar_items("i0", 1)
    described = {**CATALOG, "i0": CatalogItem("i0", "Toy Story", blocked=True)}
    reason = explain(answer, described, recommender=tiny, similar_to="i0")["i3"]
    assert reason.startswith("Similar to") and "Toy Story" not in reason


def test_popular_items_say_so_and_name_the_category_asked_for(tiny):
    answer = tiny.popular(3)
    assert answer.item_ids == ["i0", "i2", "i3"]
    described = {"i0": CatalogItem("i0", "Toy Story", categories=("Animation", "Comédie")),
                 "i2": CatalogItem("i2", "Aladdin", categories=("Musical",))}

    assert explain(answer, described, recommender=tiny, categories=("comedie", "crime")) == {
        "i0": "Popular in Comédie",  # compared folded, shown as the catalog writes it
        "i2": "Among the most popular",
        "i3": "Among the most popular",  # not in the catalog
    }
    assert set(explain(answer, described, recommender=tiny).values()) == {"Among the most popular"}


def test_a_person_without_any_signal_gets_popular_reasons_and_no_history_is_read(tiny):
    answer = tiny.recommend(tiny.profile_for_user("nobody"), 2)
    assert answer.strategy == "popular"
    explainer = Explainer(answer, ExplainContext(tiny, "watched"))
    assert explainer.items_to_describe() == []
    assert explainer.reasons(CATALOG) == {"i0": "Among the most popular", "i2": "Among the most popular"}


def test_a_chat_item_chosen_for_its_keywords_alone_says_so(tiny):
    reasons = Explainer(tiny.popular(2), ExplainContext(tiny, "watched", query="space")).reasons({})

    assert set(reasons.values()) == {"Matches \u201cspace\u201d, among the most popular"}


# --- contributors: which of a person's own items explain a recommendation ------------------------------

def test_contributors_are_the_persons_history_items_by_contribution(tiny):
    # u2 saw i0, i2 (value 1): A = [[6.1,1],[1,2.1]], A⁻¹ = [[2.1,-1],[-1,6.1]]/11.81.
    # Target i3=(2,0): A⁻¹y3 = (4.2,-2)/11.81 -> i0 adds 4.2, i2 adds 2.2.
    # Target i1=(0,1): A⁻¹y1 = (-1,6.1)/11.81 -> i0 adds -1 (left out), i2 adds 5.1.
    profile = tiny.profile_for_user("u2")
    assert contributors(tiny, profile, ["i3", "i1"], limit=4) == {"i3": ["i0", "i2"], "i1": ["i2"]}


def test_contributors_are_limited_and_skip_hidden_items(tiny):
    profile = tiny.profile_for_user("u2")
    assert contributors(tiny, profile, ["i3", "i1"], limit=1) == {"i3": ["i0"], "i1": ["i2"]}
    assert contributors(tiny, profile, ["i3", "i1"], limit=1, hidden={"i0"}) == {"i3": ["i2"], "i1": ["i2"]}
    assert contributors(tiny, profile, ["i3"], limit=0) == {"i3": []}


def test_items_disliked_are_never_contributors(tiny):
    # u2 (i0, i2) plus a strong dislike of i1 (c=-2): it adds 1·y1y1ᵀ to A, so A = [[6.1,1],[1,3.1]],
    # A⁻¹ = [[3.1,-1],[-1,6.1]]/17.91, but no term to b. Target i3: A⁻¹y3 = (6.2,-2)/17.91 -> i0 6.2, i2 4.2.
    profile = tiny.profile_for_user("u2", ["i1"], [-2.0])
    assert profile.strategy == "realtime"
    found = contributors(tiny, profile, ["i0", "i1", "i2", "i3"], limit=4)
    assert all(set(ids) <= {"i0", "i2"} for ids in found.values())
    assert found["i3"] == ["i0", "i2"]


def test_session_contributors_are_the_items_just_viewed(tiny):
    # Viewed i0, i3: target i2 gains i3 2.2 and i0 1.1 (/11.81); target i1 nothing positive (-2, -1).
    profile = tiny.profile_for_session(["i0", "i3", "ghost"])
    assert contributors(tiny, profile, ["i2", "i1"], limit=4) == {"i2": ["i3", "i0"], "i1": []}


def test_a_profile_without_history_has_no_contributors(tiny):
    assert contributors(tiny, tiny.profile_for_user("nobody"), ["i0", "i1"], limit=4) == {"i0": [], "i1": []}
    assert contributors(tiny, tiny.profile_for_user("u2"), [], limit=4) == {}
