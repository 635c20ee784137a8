"""Filters, explanations, ranking and brand safety on every read route, over the MovieLens sample.

The catalog is ``sample_stack``'s (see tests/conftest.py): the MovieLens movies
with test prices and flags, so each rule has items on both sides of it.
"""

from __future__ import annotations

import itertools
import json

import pytest

from tests.support import JSON_HEADERS, PUBLISHABLE_KEY, user_token

USER = "196"
EVERY_ROUTE = [
    ("GET", f"/users/{USER}/recommendations", None),
    ("GET", "/items/50/similar", None),
    ("GET", "/popular", None),
    ("POST", "/recommendations", {"item_ids": ["50", "1"]}),
]


@pytest.fixture
def client(sample_client):
    return sample_client


def ask(client, method, path, body=None, query="", headers=None):
    separator = "&" if "?" in path else "?"
    target = f"{path}{separator}{query}" if query else path
    if method == "GET":
        response = client.http.get(target, headers=headers or {})
    else:
        response = client.http.post(target, headers={**JSON_HEADERS, **(headers or {})}, body=json.dumps(body))
    return response.status_code, json.loads(response.body)


def passes(item, *, categories=(), min_price=None, max_price=None, available_only=True):
    if item is None or item.blocked or (available_only and not item.available):
        return False
    if categories and not {c.casefold() for c in item.categories} & {c.casefold() for c in categories}:
        return False
    if min_price is not None and item.price.amount < min_price:
        return False
    return max_price is None or item.price.amount <= max_price


@pytest.mark.parametrize(("method", "path", "body"), EVERY_ROUTE)
def test_every_route_returns_only_items_that_pass_and_fills_n(client, sample_catalog, method, path, body):
    rules = {"categories": ("Drama", "comedy"), "min_price": 5.0, "max_price": 20.0}
    query = "category=Drama,comedy&min_price=5&max_price=20&n=25&exclude=1,283"
    if body is not None:
        body = {**body, "category": ["Drama", "comedy"], "min_price": 5, "max_price": 20, "n": 25,
                "exclude": ["1", "283"]}
        query = ""

    status, answer = ask(client, method, path, body, query)

    assert status == 200, answer
    ids = [entry["item_id"] for entry in answer["items"]]
    assert len(ids) == 25  # hundreds of items pass: the filtered top items are replaced, never missing
    assert not {"1", "283"} & set(ids)
    assert [item_id for item_id in ids if not passes(sample_catalog.get(item_id), **rules)] == []


@pytest.mark.parametrize(("method", "path", "body"), EVERY_ROUTE)
def test_blocked_and_unavailable_items_are_left_out_by_default(client, sample_catalog, method, path, body):
    if body is not None:
        body = {**body, "n": 100}
    status, answer = ask(client, method, path, body, "" if body else "n=100")

    assert status == 200
    shown = [sample_catalog[entry["item_id"]] for entry in answer["items"]]
    assert len(shown) == 100
    assert [item.item_id for item in shown if item.blocked or not item.available] == []


def test_available_only_false_lets_unavailable_items_in_but_never_blocked_ones(client, sample_catalog):
    status, answer = ask(client, "GET", "/popular", query="n=100&available_only=false")

    shown = [sample_catalog[entry["item_id"]] for entry in answer["items"]]
    assert status == 200 and any(not item.available for item in shown)
    assert [item.item_id for item in shown if item.blocked] == []


def test_a_filter_that_few_items_pass_returns_just_those(client, sample_catalog):
    expected = {item_id for item_id, item in sample_catalog.items()
                if passes(item, categories=("Film-Noir",), max_price=10.0)}

    status, answer = ask(client, "GET", "/popular", query="category=film-noir&max_price=10&n=100")

    assert status == 200
    # Items the model never saw in training cannot be recommended; every other passing one comes back.
    assert {entry["item_id"] for entry in answer["items"]} <= expected
    assert 0 < len(answer["items"]) <= len(expected) < 100


@pytest.mark.parametrize(("query", "field"), [
    ("category=", "category"), ("category=a,,b", "category"), ("min_price=-1", "min_price"),
    ("max_price=cheap", "max_price"), ("min_price=20&max_price=10", "min_price"),
    ("available_only=yes", "available_only"), ("explain=1", "explain"), ("exclude=%20x", "exclude[0]"),
    ("category=" + ",".join(f"c{i}" for i in range(21)), "category"),
])
def test_bad_filter_parameters_are_refused_with_the_field_named(client, query, field):
    status, answer = ask(client, "GET", "/popular", query=query)

    assert status == 400
    assert answer["error"] == "invalid_request" and answer["field"] == field


def titles_of_history(sample_artifact, sample_catalog, user_id):
    row = sample_artifact.user_ids.tolist().index(user_id)
    indptr = sample_artifact.seen_indptr
    seen = sample_artifact.seen_indices[indptr[row]:indptr[row + 1]]
    return {sample_catalog[item_id].title for item_id in sample_artifact.item_ids[seen].tolist() if item_id in sample_catalog
            and not sample_catalog[item_id].blocked}


def named_history(reason, prefix, titles):
    """The history titles a reason names ("<prefix>A" or "<prefix>A and B"), or None if it names others."""
    for first, second in itertools.product(sorted(titles), [None, *sorted(titles)]):
        if reason == prefix + (first if second is None else f"{first} and {second}"):
            return [first] if second is None else [first, second]
    return None


def test_explanations_name_the_users_own_history_items(client, sample_catalog, sample_artifact):
    history = titles_of_history(sample_artifact, sample_catalog, USER)

    status, answer = ask(client, "GET", f"/users/{USER}/recommendations", query="explain=true&n=5")

    assert status == 200
    for entry in answer["items"]:
        named = named_history(entry["reason"], "Because you viewed ", history)
        assert named, entry["reason"]


def test_explanations_never_name_a_blocked_item(client, sample_catalog, sample_artifact):
    row = sample_artifact.user_ids.tolist().index(USER)
    indptr = sample_artifact.seen_indptr
    seen = set(sample_artifact.item_ids[sample_artifact.seen_indices[indptr[row]:indptr[row + 1]]].tolist())
    blocked_titles = {sample_catalog[item_id].title for item_id in seen if sample_catalog[item_id].blocked}
    assert blocked_titles  # the user has seen blocked items, which would otherwise be named

    status, answer = ask(client, "GET", f"/users/{USER}/recommendations", query="explain=true&n=30")

    assert status == 200
    assert [entry["reason"] for entry in answer["items"]
            if any(title in entry["reason"] for title in blocked_titles)] == []


def test_each_route_explains_itself(client):
    _, similar = ask(client, "GET", "/items/50/similar", query="explain=true&n=2")
    _, popular = ask(client, "GET", "/popular", query="explain=true&n=2&category=comedy")
    _, session = ask(client, "POST", "/recommendations", {"item_ids": ["50"], "n": 2, "explain": True})

    assert {entry["reason"] for entry in similar["items"]} == {"Similar to Star Wars (1977)"}
    assert {entry["reason"] for entry in popular["items"]} == {"Popular in Comedy"}
    assert {entry["reason"] for entry in session["items"]} == {"Because you just viewed Star Wars (1977)"}


def test_without_explain_no_reason_is_given(client):
    _, answer = ask(client, "GET", "/popular", query="n=3")

    assert all("reason" not in entry for entry in answer["items"])


# --- POST /rank --------------------------------------------------------------------------------------


def test_rank_orders_candidates_by_the_users_scores_and_lists_the_others(client):
    candidates = ["1", "no-such-item", "7", "50", "7", "11", "also-unknown", "127"]

    status, answer = ask(client, "POST", "/rank", {"user_id": USER, "item_ids": candidates})
    _, recommended = ask(client, "GET", f"/users/{USER}/recommendations",
                         query="n=100&available_only=false")

    assert status == 200
    ranked = [entry["item_id"] for entry in answer["items"]]
    scores = [entry["score"] for entry in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    assert answer["unknown_item_ids"] == ["no-such-item", "also-unknown"]
    assert answer["blocked_item_ids"] == ["11"]  # known, but the catalog blocks it: listed, not ranked
    assert sorted(ranked) == ["1", "127", "50", "7"]
    # The same scores the user's recommendations give, for the items both hold.
    same = {entry["item_id"]: entry["score"] for entry in recommended["items"]}
    assert [score for item_id, score in zip(ranked, scores) if item_id in same] == \
        [same[item_id] for item_id in ranked if item_id in same]


def test_rank_for_an_anonymous_session(client):
    status, answer = ask(client, "POST", "/rank", {"session_item_ids": ["50", "172"], "item_ids": ["181", "1", "8"]},
                         headers={"x-api-key": PUBLISHABLE_KEY})

    assert status == 200 and answer["strategy"] == "session"
    assert answer["blocked_item_ids"] == ["181"]
    assert [entry["item_id"] for entry in answer["items"]] == sorted(
        ["1", "8"], key=lambda item_id: -next(e["score"] for e in answer["items"] if e["item_id"] == item_id))


@pytest.mark.parametrize(("body", "field"), [
    ({"item_ids": ["1"]}, "user_id"),
    ({"item_ids": ["1"], "user_id": "1", "session_item_ids": []}, "user_id"),
    ({"user_id": "1"}, "item_ids"),
    ({"user_id": "1", "item_ids": []}, "item_ids"),
    ({"user_id": "1", "item_ids": [str(i) for i in range(501)]}, "item_ids"),
    ({"user_id": "1", "item_ids": ["1"], "n": 3}, "n"),
])
def test_rank_refuses_bad_requests(client, body, field):
    status, answer = ask(client, "POST", "/rank", body)

    assert status == 400 and answer["field"] == field


def test_rank_for_a_user_with_a_publishable_key_needs_that_users_token(client):
    body = {"user_id": USER, "item_ids": ["1", "7"]}
    without, _ = ask(client, "POST", "/rank", body, headers={"x-api-key": PUBLISHABLE_KEY})
    other, _ = ask(client, "POST", "/rank", body,
                   headers={"x-api-key": PUBLISHABLE_KEY, "x-user-token": user_token("1")})
    own, answer = ask(client, "POST", "/rank", body,
                      headers={"x-api-key": PUBLISHABLE_KEY, "x-user-token": user_token(USER)})

    assert (without, other, own) == (403, 403, 200)
    assert answer["strategy"] == "personalized"
