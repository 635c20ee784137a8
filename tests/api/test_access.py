"""Who may call what: every route against every kind of caller, CORS per key, preflights, rate limits."""

from __future__ import annotations

import json
import time
from dataclasses import replace

import pytest

from chalicelib.catalog.rules import check_catalog_item
from tests.conftest import with_counters
from tests.support import (
    PUBLISHABLE_KEY,
    SECRET_HEADERS,
    SECRET_KEY,
    SHOP_ORIGIN,
    as_visitor,
    client_for,
    user_token,
    with_tiny_segments,
)


@pytest.fixture(name="settings")
def counting_settings(settings):
    """The test's settings, counting at ingest (the suite's default is off): the insight routes are here."""
    return with_counters(settings)


EVENT_FOR_U0 = {"events": [{"user_id": "u0", "item_id": "i1", "event_type": "click"}]}
ROUTES = {
    "health": ("GET", "/health", None),
    "user": ("GET", "/users/u0/recommendations", None),
    "similar": ("GET", "/items/i0/similar", None),
    "popular": ("GET", "/popular", None),
    "session": ("POST", "/recommendations", {"item_ids": ["i0"]}),
    "events": ("POST", "/events", EVENT_FOR_U0),
    "erase": ("DELETE", "/users/u0", None),
    "contract": ("GET", "/openapi.json", None),
    "docs": ("GET", "/docs", None),
    "docs file": ("GET", "/docs/docs.js", None),
    "widget": ("GET", "/widget.js", None),
    "widget demo": ("GET", "/demo", None),
    "widget demo file": ("GET", "/demo.js", None),
    "rank for a user": ("POST", "/rank", {"user_id": "u0", "item_ids": ["i0", "i1"]}),
    "rank for a session": ("POST", "/rank", {"session_item_ids": ["i0"], "item_ids": ["i1"]}),
    "chat for a user": ("POST", "/chat/suggestions", {"user_id": "u0", "liked_item_ids": ["i0"]}),
    "chat": ("POST", "/chat/suggestions", {"liked_item_ids": ["i0"]}),
    "catalog put": ("PUT", "/items/i0", {"title": "Item zero"}),
    "catalog batch": ("POST", "/items", {"items": [{"item_id": "i1", "title": "Item one"}]}),
    "catalog get": ("GET", "/items/i0", None),
    "item audience": ("GET", "/items/i0/audience", None),
    "category audience": ("GET", "/audiences?category=Even", None),
    "segments": ("GET", "/segments", None),
    "user segment": ("GET", "/users/u2/segment", None),  # u0 is erased by "erase"
    "item performance": ("GET", "/insights/items", None),
    "category performance": ("GET", "/insights/categories?window=24h", None),
    "trending": ("GET", "/trending", None),
}
#: Routes of servers only: a publishable key is refused, whoever's token it carries.
SECRET_ROUTES = ("erase", "catalog put", "catalog batch", "catalog get", "item audience", "category audience",
                 "segments", "user segment", "item performance", "category performance")
#: Routes anyone may call without a key (a key that is sent must still be valid, from its origins).
PUBLIC_ROUTES = ("health", "contract", "docs", "docs file", "widget", "widget demo", "widget demo file")
EXPIRED = user_token("u0", ttl_seconds=60, now=time.time() - 3600)
CALLERS = {
    "no key": {"x-api-key": None},
    "unknown key": {"x-api-key": "pk_not_a_key_of_this_api"},
    "publishable": as_visitor(),
    "publishable + own token": as_visitor("u0"),
    "publishable + another user's token": as_visitor("u1"),
    "publishable + expired token": {**as_visitor(), "x-user-token": EXPIRED},
    "publishable from another origin": as_visitor("u0", origin="https://elsewhere.example"),
    "publishable from a server (no Origin)": as_visitor("u0", origin=None),
    "secret": SECRET_HEADERS,
}
OK = {"health": 200, "user": 200, "similar": 200, "popular": 200, "session": 200, "events": 202, "erase": 200,
      "contract": 200, "docs": 200, "docs file": 200, "widget": 200, "widget demo": 200, "widget demo file": 200,
      "rank for a user": 200, "rank for a session": 200, "chat for a user": 200, "chat": 200,
      "catalog put": 200, "catalog batch": 200, "catalog get": 200, "item audience": 200, "category audience": 200,
      "segments": 200, "user segment": 200, "item performance": 200, "category performance": 200, "trending": 200}
#: Routes open to any key that act for the user they name: with a publishable key, only with that user's token.
PER_USER_ROUTES = ("user", "events", "rank for a user", "chat for a user")


def refused(status: int, code: str, **overrides: int) -> dict:
    """Every route answers (status, code), except those given."""
    return {route: overrides.get(route, (status, code)) for route in ROUTES}


def reads_only(token_error: tuple[int, str] | None) -> dict:
    """A publishable key: reads and (with the right token) events; never erasure or the catalog."""
    per_user = token_error or None
    return {**OK, **{route: per_user or OK[route] for route in PER_USER_ROUTES},
            **{route: (403, "key_not_allowed") for route in SECRET_ROUTES}}


EXPECTED = {
    "no key": refused(401, "missing_api_key", **{route: 200 for route in PUBLIC_ROUTES}),
    "unknown key": refused(403, "invalid_api_key"),
    "publishable": reads_only((403, "user_token_required")),
    "publishable + own token": reads_only(None),
    "publishable + another user's token": reads_only((403, "token_user_mismatch")),
    "publishable + expired token": reads_only((403, "expired_user_token")),
    "publishable from another origin": refused(403, "origin_not_allowed"),
    "publishable from a server (no Origin)": reads_only(None),
    "secret": OK,
}


def call(client, route: str, headers: dict):
    method, path, body = ROUTES[route]
    raw = json.dumps(body) if body is not None else b""
    return client.http.request(method, path, headers={"Content-Type": "application/json", **headers}, body=raw)


@pytest.fixture
def client(settings, resources, model_registry, make_tiny_artifact, tmp_path):
    model_registry.publish(with_tiny_segments(make_tiny_artifact()))
    # A category for the category audience (i2: the matrix's catalog writes replace i0 and i1).
    resources.catalog.put([check_catalog_item({"title": "Item two", "categories": ["Even"]}, item_id="i2")])
    with client_for(settings, tmp_path, headers={}) as client:
        yield client


def test_every_route_against_every_kind_of_caller(client):
    wrong = []
    for caller, headers in CALLERS.items():
        for route in ROUTES:
            response = call(client, route, headers)
            body = json.loads(response.body) if response.status_code >= 400 else None
            got = response.status_code if response.status_code < 400 else (response.status_code, body.get("error"))
            if got != EXPECTED[caller][route]:
                wrong.append((caller, route, got, EXPECTED[caller][route]))
            if response.status_code >= 400 and not body.get("message"):
                wrong.append((caller, route, "error without a message"))
            # Never echoed back: not the key, not the token.
            for secret in (PUBLISHABLE_KEY, SECRET_KEY, headers.get("x-user-token") or "no token"):
                if secret in response.body.decode():
                    wrong.append((caller, route, "answer contains a key or token"))
    assert wrong == []


def test_the_matrix_covers_every_route_of_the_app():
    import app

    served = {(path, method) for path, methods in app.app.routes.items() for method in methods if method != "OPTIONS"}
    assert served == {(path, method) for method, path, _ in _templates(ROUTES.values())}


def _templates(routes):
    """The matrix's requests as route templates (the ids it uses are u0, u2 and i0; the docs file is docs.js)."""
    for method, path, body in routes:
        path = path.partition("?")[0]
        path = path.replace("/users/u0", "/users/{user_id}").replace("/users/u2", "/users/{user_id}").replace("/items/i0", "/items/{item_id}")
        yield method, path.replace("/docs/docs.js", "/docs/{asset}"), body


def test_health_details_are_for_secret_keys_only(client):
    public = json.loads(call(client, "health", as_visitor()).body)
    detailed = json.loads(call(client, "health", SECRET_HEADERS).body)

    assert public == {"status": "ok"}
    assert detailed["status"] == "ok" and detailed["counts"]["items"] == 4 and detailed["model_version"]


def test_pages_of_a_keys_origins_may_read_the_answers_other_pages_may_not(client):
    def allow_origin(headers):
        return call(client, "popular", headers).headers.get("Access-Control-Allow-Origin")

    assert allow_origin(as_visitor()) == SHOP_ORIGIN
    assert call(client, "user", as_visitor()).headers.get("Access-Control-Allow-Origin") == SHOP_ORIGIN  # a 403 too
    assert allow_origin({"origin": SHOP_ORIGIN}) == SHOP_ORIGIN  # the 401 of a page that forgot its key
    assert allow_origin(as_visitor(origin="https://elsewhere.example")) is None
    assert allow_origin({**SECRET_HEADERS, "origin": SHOP_ORIGIN}) is None  # secret keys are not for pages
    assert allow_origin(as_visitor(origin=None)) is None


def test_preflights_are_answered_for_the_origins_of_publishable_keys_only(client):
    allowed = client.http.options("/users/u0/recommendations", headers={"origin": SHOP_ORIGIN,
                                                                         "Access-Control-Request-Method": "GET"})
    other = client.http.options("/events", headers={"origin": "https://elsewhere.example"})

    assert allowed.status_code == 204
    assert allowed.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN
    assert allowed.headers["Access-Control-Allow-Methods"] == "GET,OPTIONS"
    assert set(allowed.headers["Access-Control-Allow-Headers"].lower().split(",")) == {
        "content-type", "x-api-key", "x-user-token"}
    assert (other.status_code, json.loads(other.body)["error"]) == (403, "origin_not_allowed")
    assert "Access-Control-Allow-Origin" not in other.headers


def test_events_are_limited_per_user_for_publishable_keys(settings, model_registry, make_tiny_artifact, tmp_path):
    limited = replace(settings, event_rate_user_per_second=0.01, event_rate_user_burst=3)
    with client_for(limited, tmp_path, headers={}) as client:
        def post(headers, user_id, count):
            body = {"events": [{"user_id": user_id, "item_id": f"i{n}", "event_type": "view"} for n in range(count)]}
            return client.http.post("/events", body=json.dumps(body),
                                    headers={"Content-Type": "application/json", **headers})

        assert post(as_visitor("u0"), "u0", 3).status_code == 202
        refused = post(as_visitor("u0"), "u0", 1)
        assert (refused.status_code, json.loads(refused.body)["error"]) == (429, "rate_limited")
        assert int(refused.headers["Retry-After"]) == json.loads(refused.body)["retry_after_seconds"] > 0
        assert refused.headers["Access-Control-Allow-Origin"] == SHOP_ORIGIN  # the page can read the wait
        assert post(as_visitor("u1"), "u1", 3).status_code == 202  # another user has a bucket of their own
        assert post(SECRET_HEADERS, "u0", 50).status_code == 202  # servers are not limited


def test_a_token_for_an_id_in_another_unicode_form_is_the_same_user(client):
    """Ids are compared in NFC: a backend's token for "Jose" + U+0301 is the token of "José"."""
    decomposed = "Jose\u0301"
    page = as_visitor(decomposed)
    event = {"events": [{"user_id": decomposed, "item_id": "i1", "event_type": "click"}]}
    posted = client.http.post("/events", headers={"Content-Type": "application/json", **page}, body=json.dumps(event))
    assert posted.status_code == 202, posted.body
    for path in ("/users/Jos%C3%A9/recommendations", "/users/Jose%CC%81/recommendations"):
        read = client.http.get(path, headers=page)
        assert (read.status_code, json.loads(read.body)["user_id"]) == (200, "Jos\u00e9"), path
