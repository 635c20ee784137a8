"""Catalog routes end to end (secret key), on both DynamoDB emulators."""

from __future__ import annotations

import json

import pytest

from tests.support import JSON_HEADERS, client_for


@pytest.fixture
def client(dynamodb_settings, tmp_path):
    with client_for(dynamodb_settings, tmp_path) as client:
        yield client


def send(client, method, path, body=None):
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body) if body is not None else b""
    response = client.http.request(method, path, headers=JSON_HEADERS, body=raw)
    return response.status_code, json.loads(response.body)


def test_put_then_get_gives_the_item_as_stored(client):
    status, body = send(client, "PUT", "/items/50", {
        "title": "Star Wars (1977)", "url": "https://example.com/50", "categories": ["Sci-Fi", "War"],
        "price": {"amount": 3.99, "currency": "USD"}, "attributes": {"year": 1977}})

    assert status == 200
    stored = body["item"]
    assert send(client, "GET", "/items/50") == (200, stored)
    assert stored["categories"] == ["Sci-Fi", "War"] and stored["price"] == {"amount": 3.99, "currency": "USD"}
    assert stored["available"] is True and stored["blocked"] is False and stored["updated_at"]


def test_a_batch_upserts_every_item_and_a_resend_changes_nothing_but_the_time(client):
    items = [{"item_id": str(n), "title": f"Item {n}", "categories": ["c"]} for n in range(30)]
    assert send(client, "POST", "/items", {"items": items}) == (200, {"upserted": 30, "item_ids": [str(n) for n in range(30)]})
    first = send(client, "GET", "/items/29")[1]
    assert send(client, "POST", "/items", {"items": items})[0] == 200
    again = send(client, "GET", "/items/29")[1]
    assert {**again, "updated_at": None} == {**first, "updated_at": None}


def test_a_batch_with_one_bad_item_is_refused_whole_and_nothing_is_written(client):
    items = [{"item_id": "a", "title": "A"}, {"item_id": "b", "title": "B", "price": {"amount": 1, "currency": "euro"}}]
    status, body = send(client, "POST", "/items", {"items": items})

    assert (status, body["error"], body["field"]) == (400, "invalid_request", "items[1].price.currency")
    assert send(client, "GET", "/items/a")[0] == 404


@pytest.mark.parametrize(("method", "path", "body", "status", "error"), [
    ("GET", "/items/nothing-here", None, 404, "catalog_item_not_found"),
    ("PUT", "/items/50", "not json", 400, "invalid_request"),
    ("PUT", "/items/50", {"item_id": "51", "title": "x"}, 400, "invalid_request"),
    ("PUT", "/items/a%E2%80%AEb", {"title": "x"}, 400, "invalid_request"),
    ("POST", "/items", {"items": [{"item_id": str(n), "title": "t"} for n in range(101)]}, 413, "payload_too_large"),
    ("PUT", "/items/50?upsert=1", {"title": "x"}, 400, "invalid_request"),
])
def test_bad_requests_get_a_clear_4xx(client, method, path, body, status, error):
    got_status, got = send(client, method, path, body)
    assert (got_status, got["error"]) == (status, error)
    assert got["message"]
