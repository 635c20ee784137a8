"""The audience routes through the app: answers by hand on the tiny model, erased users, bad input, keys.

Tiny model (tests.support.tiny_artifact): users u0 = (1,0) saw i3; u1 = (0,1); u2 = (1,1) saw i0 and i2.
Items i0..i3 = (1,0), (0,1), (1,1), (2,0). The catalog files i1 and i2 under "Sci-Fi".
"""

from __future__ import annotations

import json

import pytest

from chalicelib.catalog.rules import check_catalog_item
from tests.support import as_visitor, client_for


@pytest.fixture
def client(settings, resources, make_tiny_artifact, tmp_path):
    resources.model_registry.publish(make_tiny_artifact())
    resources.catalog.put([check_catalog_item({"title": f"Item {n}", "categories": ["Sci-Fi"]}, item_id=f"i{n}")
                           for n in (1, 2)])
    with client_for(settings, tmp_path) as client:
        yield client


def get(client, path, headers=None):
    response = client.http.get(path, headers=headers or {})
    return response.status_code, json.loads(response.body)


def users(answer):
    return [(user["user_id"], user["score"]) for user in answer["users"]]


def test_an_items_audience_ranks_users_by_score_without_those_who_engaged(client):
    status, answer = get(client, "/items/i3/audience")

    assert status == 200
    assert answer["item_id"] == "i3" and answer["engaged_users"] == 1 and answer["include_engaged"] is False
    assert users(answer) == [("u2", 2.0), ("u1", 0.0)]  # u0 (2.0) saw i3
    assert users(get(client, "/items/i3/audience?include_engaged=true&n=2")[1]) == [("u0", 2.0), ("u2", 2.0)]


def test_a_categorys_audience_ranks_users_by_their_mean_score_over_its_items(client):
    status, answer = get(client, "/audiences?category=sci-fi&n=5")

    assert status == 200
    assert (answer["category"], answer["category_items"], answer["engaged_users"]) == ("sci-fi", 2, 1)
    assert users(answer) == [("u1", 1.0), ("u0", 0.5)]  # mean of (0,1) and (1,1) is (0.5, 1); u2 saw i2
    assert users(get(client, "/audiences?category=Sci-Fi&include_engaged=true")[1]) == [
        ("u2", 1.5), ("u1", 1.0), ("u0", 0.5)]


def test_an_erased_user_leaves_every_audience_at_once(client):
    assert client.http.delete("/users/u1").status_code == 200

    assert users(get(client, "/items/i1/audience")[1]) == [("u2", 1.0), ("u0", 0.0)]
    assert users(get(client, "/audiences?category=Sci-Fi")[1]) == [("u0", 0.5)]


@pytest.mark.parametrize(("path", "status", "error", "field"), [
    ("/items/i0/audience?n=0", 400, "invalid_request", "n"),
    ("/items/i0/audience?n=1001", 400, "invalid_request", "n"),
    ("/items/i0/audience?n=ten", 400, "invalid_request", "n"),
    ("/items/i0/audience?include_engaged=yes", 400, "invalid_request", "include_engaged"),
    ("/items/i0/audience?category=Sci-Fi", 400, "invalid_request", "category"),
    ("/items/i0/audience?n=5&n=6", 400, "invalid_request", "n"),
    ("/items/%00/audience", 400, "invalid_request", "item_id"),
    ("/items/nope/audience", 404, "item_not_found", None),
    ("/audiences", 400, "invalid_request", "category"),
    ("/audiences?category=", 400, "invalid_request", "category"),
    ("/audiences?category=%20", 400, "invalid_request", "category"),
    (f"/audiences?category={'x' * 257}", 400, "invalid_request", "category"),
    ("/audiences?category=Sci-Fi&n=1001", 400, "invalid_request", "n"),
    ("/audiences?category=Sci-Fi&explain=true", 400, "invalid_request", "explain"),
    ("/audiences?category=Westerns", 404, "category_not_found", None),
    ("/audiences?category=Sci-Fi,Drama", 404, "category_not_found", None),  # one category: the comma is in the name
])
def test_bad_input_is_refused_saying_what_is_wrong(client, path, status, error, field):
    got, body = get(client, path)
    assert (got, body["error"], body.get("field")) == (status, error, field)
    assert body["message"]


def test_n_goes_up_to_a_thousand(client):
    assert get(client, "/items/i0/audience?n=1001")[1]["message"] == "n must be between 1 and 1000, got 1001"
    assert get(client, "/items/i0/audience?n=1000")[0] == 200


@pytest.mark.parametrize("path", ["/items/i0/audience", "/audiences?category=Sci-Fi"])
def test_audiences_are_for_secret_keys_only(client, path):
    assert get(client, path, {"x-api-key": None})[1]["error"] == "missing_api_key"
    for headers in (as_visitor(), as_visitor("u0"), as_visitor("u0", origin=None)):
        status, body = get(client, path, headers)
        assert (status, body["error"]) == (403, "key_not_allowed")
