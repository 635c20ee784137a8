"""The edge every route shares: query parameters are allow-listed per route, before the view runs."""

from __future__ import annotations

import json

import pytest

import app
from chalicelib.api.routing import ROUTE_QUERY
from tests.support import JSON_HEADERS

#: A concrete request for each route: (path, body).
REQUESTS = {
    ("/health", "GET"): ("/health", None),
    ("/users/{user_id}/recommendations", "GET"): ("/users/u0/recommendations", None),
    ("/items/{item_id}/similar", "GET"): ("/items/i0/similar", None),
    ("/popular", "GET"): ("/popular", None),
    ("/recommendations", "POST"): ("/recommendations", {"item_ids": ["i0"]}),
    ("/events", "POST"): ("/events", {"events": [{"user_id": "u0", "item_id": "i0", "event_type": "click"}]}),
    ("/users/{user_id}", "DELETE"): ("/users/u0", None),
    ("/openapi.json", "GET"): ("/openapi.json", None),
    ("/docs", "GET"): ("/docs", None),
    ("/docs/{asset}", "GET"): ("/docs/docs.js", None),
    ("/widget.js", "GET"): ("/widget.js", None),
    ("/demo", "GET"): ("/demo", None),
    ("/demo.js", "GET"): ("/demo.js", None),
    ("/rank", "POST"): ("/rank", {"user_id": "u0", "item_ids": ["i0"]}),
    ("/chat/suggestions", "POST"): ("/chat/suggestions", {"liked_item_ids": ["i0"]}),
    ("/items/{item_id}", "PUT"): ("/items/i0", {"title": "Item zero"}),
    ("/items", "POST"): ("/items", {"items": [{"item_id": "i1", "title": "Item one"}]}),
    ("/items/{item_id}", "GET"): ("/items/i0", None),
    ("/items/{item_id}/audience", "GET"): ("/items/i0/audience", None),
    ("/audiences", "GET"): ("/audiences", None),
    ("/segments", "GET"): ("/segments", None),
    ("/users/{user_id}/segment", "GET"): ("/users/u0/segment", None),
    ("/insights/items", "GET"): ("/insights/items", None),
    ("/insights/categories", "GET"): ("/insights/categories", None),
    ("/trending", "GET"): ("/trending", None),
}


@pytest.fixture
def published(model_registry, make_tiny_artifact):
    return model_registry.publish(make_tiny_artifact())


def send(client, route, query):
    path, body = REQUESTS[route]
    raw = json.dumps(body) if body is not None else b""
    response = client.http.request(route[1], f"{path}?{query}", headers=JSON_HEADERS, body=raw)
    return response.status_code, json.loads(response.body) if response.body.startswith(b"{") else {}


def test_every_route_has_a_request_here():
    assert set(REQUESTS) == {(path, method) for path, methods in app.app.routes.items()
                             for method in methods if method != "OPTIONS"}


# Regression: only the GET recommendation routes refused unknown query parameters; the others
# ignored them, so a misspelt parameter was silently without effect.
def test_unknown_query_parameters_are_refused_on_every_route_before_the_view(api_client, published, resources):
    wrong = {}
    for route in REQUESTS:
        got = send(api_client, route, "unexpected=1")
        if (got[0], got[1].get("error"), got[1].get("field")) != (400, "invalid_request", "unexpected"):
            wrong[route] = got
    assert wrong == {}
    assert list(resources.event_table.scan()) == []  # neither the event nor the erasure marker was written


def test_n_is_accepted_where_declared_only_and_only_once(api_client, published):
    assert ROUTE_QUERY[("/popular", "GET")][0] == "n"
    assert send(api_client, ("/popular", "GET"), "n=2")[0] == 200
    for route in REQUESTS:
        status, answer = send(api_client, route, "n=2&n=3")
        assert (status, answer.get("field")) == (400, "n"), route
        if "n" not in ROUTE_QUERY[route]:
            status, answer = send(api_client, route, "n=2")
            assert (status, answer.get("field")) == (400, "n"), route
