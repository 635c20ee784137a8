"""``POST /chat/suggestions`` over the MovieLens sample (``sample_stack``: test prices and flags)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from chalicelib.api.validation import parse_chat_request
from chalicelib.catalog.index import words_of
from chalicelib.errors import InvalidRequest
from tests.support import JSON_HEADERS, PUBLISHABLE_KEY, user_token

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "chalicelib/api/schemas/chat_suggestions.json"
STAR_WARS, EMPIRE, JEDI = "50", "172", "181"


@pytest.fixture
def client(sample_client):
    return sample_client


def suggest(client, body, headers=None):
    response = client.http.post("/chat/suggestions", headers={**JSON_HEADERS, **(headers or {})},
                                body=json.dumps(body))
    return response.status_code, json.loads(response.body)


def matches_every_word(item, query):
    words = {word for text in (item.title, *item.categories) for word in words_of(text)}
    return all(any(word.startswith(wanted) for word in words) for wanted in words_of(query))


def test_suggestions_follow_what_the_person_liked_and_come_with_a_reply(client, sample_catalog):
    status, answer = suggest(client, {"liked_item_ids": [STAR_WARS, EMPIRE]})

    assert status == 200
    assert answer["strategy"] == "conversation" and answer["matched"] is True
    assert len(answer["items"]) == 3  # the default
    titles = [sample_catalog[entry["item_id"]].title for entry in answer["items"]]
    assert [entry["title"] for entry in answer["items"]] == titles
    assert all(entry["reason"].startswith("Because you liked ") for entry in answer["items"])
    assert not {STAR_WARS, EMPIRE} & {entry["item_id"] for entry in answer["items"]}
    assert answer["message"].splitlines()[0] == "Here are 3 suggestions:"
    for number, (line, entry) in enumerate(zip(answer["message"].splitlines()[1:], answer["items"]), start=1):
        price = entry["price"]
        assert line == f"{number}. {entry['title']} ({price['amount']:g} {price['currency']}) \u2014 {entry['reason']}"


def test_a_dislike_pushes_similar_items_down_and_is_never_suggested(client):
    # The Star Trek films: candidates all similar to one another, so one disliked pushes the others down.
    liked = {"liked_item_ids": [STAR_WARS], "query": "star trek", "n": 10}
    _, plain = suggest(client, liked)
    disliked = "222"  # Star Trek: First Contact
    _, with_dislike = suggest(client, {**liked, "disliked_item_ids": [disliked]})

    before = {entry["item_id"]: entry["score"] for entry in plain["items"]}
    after = {entry["item_id"]: entry["score"] for entry in with_dislike["items"]}
    assert disliked in before and disliked not in after
    shared = set(before) & set(after)
    assert len(shared) >= 3
    assert all(after[item_id] < before[item_id] for item_id in shared)  # every other Star Trek film fell


def test_the_query_and_constraints_hold_for_every_suggestion(client, sample_catalog):
    status, answer = suggest(client, {"query": "WAR", "category": ["drama", "Action"], "max_price": 30, "n": 10})

    assert status == 200 and answer["matched"] is True
    assert 0 < len(answer["items"]) <= 10
    for entry in answer["items"]:
        item = sample_catalog[entry["item_id"]]
        assert matches_every_word(item, "war"), item.title
        assert {"drama", "action"} & {category.casefold() for category in item.categories}
        assert item.price.amount <= 30 and item.available and not item.blocked
    assert answer["message"].startswith(f"Here are {len(answer['items'])} suggestions matching \u201cWAR\u201d "
                                        "in drama or Action at 30 or less:")


def test_accents_and_case_do_not_matter_in_the_query(client):
    _, plain = suggest(client, {"query": "godfather", "n": 5})
    _, accented = suggest(client, {"query": "GÖDFÂTHER", "n": 5})

    assert plain["items"] and [e["item_id"] for e in plain["items"]] == [e["item_id"] for e in accented["items"]]


def test_when_nothing_matches_the_reply_says_so_and_offers_popular_items(client, sample_catalog):
    status, answer = suggest(client, {"query": "zzyzx quux", "disliked_item_ids": ["294"], "n": 2})

    assert status == 200 and answer["matched"] is False and answer["strategy"] == "popular"
    assert len(answer["items"]) == 2 and "294" not in {entry["item_id"] for entry in answer["items"]}
    assert all(not sample_catalog[entry["item_id"]].blocked for entry in answer["items"])
    assert answer["message"].splitlines()[0] == "I found nothing matching \u201czzyzx quux\u201d. Popular picks instead:"
    assert {entry["reason"] for entry in answer["items"]} == {"Among the most popular"}  # not "Matches …"


def test_a_known_user_gets_their_history_with_the_conversation(client, sample_catalog):
    status, answer = suggest(client, {"user_id": "196", "category": "Comedy", "n": 2})

    assert status == 200 and answer["user_id"] == "196" and answer["strategy"] == "personalized"
    assert all(entry["reason"].startswith("Because you viewed ") for entry in answer["items"])


def test_a_user_id_with_a_publishable_key_needs_that_users_token(client):
    body = {"user_id": "196", "n": 1}
    without, _ = suggest(client, body, headers={"x-api-key": PUBLISHABLE_KEY})
    other, _ = suggest(client, body, headers={"x-api-key": PUBLISHABLE_KEY, "x-user-token": user_token("1")})
    own, _ = suggest(client, body, headers={"x-api-key": PUBLISHABLE_KEY, "x-user-token": user_token("196")})
    anonymous, _ = suggest(client, {"liked_item_ids": ["1"]}, headers={"x-api-key": PUBLISHABLE_KEY})

    assert (without, other, own, anonymous) == (403, 403, 200, 200)


GOOD_BODIES = [
    {},
    {"liked_item_ids": ["50"], "disliked_item_ids": ["1"], "query": "space", "category": "Sci-Fi",
     "max_price": 10.5, "exclude": ["2"], "n": 10, "user_id": "u1"},
    {"category": ["Comedy", "Drama"], "n": 1},
]
BAD_BODIES = [
    ({"n": 0}, "n"), ({"n": 11}, "n"), ({"n": "3"}, "n"), ({"query": ""}, "query"), ({"query": "x" * 201}, "query"),
    ({"liked_item_ids": "50"}, "liked_item_ids"), ({"liked_item_ids": [str(i) for i in range(51)]}, "liked_item_ids"),
    ({"disliked_item_ids": [7]}, "disliked_item_ids[0]"), ({"category": []}, "category"),
    ({"max_price": -1}, "max_price"), ({"exclude": [""]}, "exclude[0]"), ({"user_id": ""}, "user_id"),
    ({"mood": "happy"}, "mood"),
]


@pytest.mark.parametrize("body", GOOD_BODIES)
def test_the_json_schema_and_the_route_accept_the_same_requests(body):
    Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).validate(body)
    parse_chat_request(json.dumps(body))


@pytest.mark.parametrize(("body", "field"), BAD_BODIES)
def test_the_json_schema_and_the_route_refuse_the_same_requests(body, field):
    assert not Draft202012Validator(json.loads(SCHEMA_PATH.read_text())).is_valid(body)
    with pytest.raises(InvalidRequest) as refused:
        parse_chat_request(json.dumps(body))
    assert refused.value.field == field


def test_the_json_schema_is_a_valid_tool_definition_and_the_contracts_request_body():
    from chalicelib.api.docs import openapi_document

    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["title"] == "suggest_products" and schema["description"]
    assert all(spec.get("description") for spec in schema["properties"].values())
    documented = openapi_document()["components"]["schemas"]["ChatRequest"]
    assert documented == {key: value for key, value in schema.items() if key not in ("$schema", "title")}


def test_bad_input_gets_a_400_naming_the_field(client):
    status, answer = suggest(client, {"n": 11})

    assert status == 400 and answer["field"] == "n"
