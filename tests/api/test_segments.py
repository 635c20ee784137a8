"""The segment routes through the app: the tiny model's hand-made segments, real catalog items, erased users,
a model without segments, bad input, keys.

Tiny model (tests.support.with_tiny_segments): segment 0 = {u0, u2} described by i3 then i0; segment 1 = {u1}
by i1. The catalog holds i3 (Sci-Fi), i0 (Sci-Fi, Action) and i1 (Comedy).
"""

from __future__ import annotations

import json

import pytest

from chalicelib.catalog.rules import check_catalog_item
from tests.support import as_visitor, client_for, with_tiny_segments

CATALOG = {"i3": ("Star Wars", ["Sci-Fi"]), "i0": ("The Matrix", ["Sci-Fi", "Action"]), "i1": ("Airplane!", ["Comedy"])}


@pytest.fixture
def catalog(resources):
    resources.catalog.put([check_catalog_item({"title": title, "categories": categories}, item_id=item_id)
                           for item_id, (title, categories) in CATALOG.items()])


@pytest.fixture
def client(settings, resources, make_tiny_artifact, catalog, tmp_path):
    resources.model_registry.publish(with_tiny_segments(make_tiny_artifact()))
    with client_for(settings, tmp_path) as client:
        yield client


def get(client, path, headers=None):
    response = client.http.get(path, headers=headers or {})
    return response.status_code, json.loads(response.body)


def test_segments_are_listed_with_their_sizes_and_real_catalog_items(client):
    status, answer = get(client, "/segments")

    assert status == 200
    assert [(s["segment"], s["users"], s["label"]) for s in answer["segments"]] == [
        (0, 2, "Sci-Fi and Action"), (1, 1, "Comedy")]
    assert answer["segments"][0]["top_items"] == [
        {"item_id": "i3", "title": "Star Wars", "categories": ["Sci-Fi"]},
        {"item_id": "i0", "title": "The Matrix", "categories": ["Sci-Fi", "Action"]}]
    # Sci-Fi: 2 of 2 items here, 2 of 3 in all segments (lift 1.5); Action 1/2 over 1/3 = 1.5, fewer items
    assert answer["segments"][0]["top_categories"] == ["Sci-Fi", "Action"]


def test_a_users_segment(client):
    status, answer = get(client, "/users/u1/segment")

    assert status == 200
    assert (answer["user_id"], answer["segment"], answer["label"]) == ("u1", 1, "Comedy")
    assert answer["top_items"] == [{"item_id": "i1", "title": "Airplane!", "categories": ["Comedy"]}]
    assert get(client, "/users/u2/segment")[1]["segment"] == 0


def test_an_erased_user_has_no_segment_at_once(client):
    assert client.http.delete("/users/u2").status_code == 200

    assert get(client, "/users/u2/segment") == (404, {"error": "user_not_found",
                                                      "message": "user 'u2' is not in the live model"})
    assert get(client, "/segments")[1]["segments"][0]["users"] == 2  # sizes are the model's, until the next retrain


@pytest.mark.parametrize(("path", "status", "error", "field"), [
    ("/users/nobody/segment", 404, "user_not_found", None),
    ("/users/%00/segment", 400, "invalid_request", "user_id"),
    (f"/users/{'x' * 257}/segment", 400, "invalid_request", "user_id"),
    ("/users/u0/segment?n=3", 400, "invalid_request", "n"),
    ("/segments?n=3", 400, "invalid_request", "n"),
])
def test_bad_input_is_refused_saying_what_is_wrong(client, path, status, error, field):
    got, body = get(client, path)

    assert (got, body["error"], body.get("field")) == (status, error, field)


def test_a_model_without_segments_says_so(settings, resources, make_tiny_artifact, catalog, tmp_path):
    resources.model_registry.publish(make_tiny_artifact())
    with client_for(settings, tmp_path) as client:
        for path in ("/segments", "/users/u0/segment"):
            status, body = get(client, path)
            assert (status, body["error"]) == (409, "segments_unavailable")


@pytest.mark.parametrize("path", ["/segments", "/users/u0/segment"])
def test_segments_need_a_secret_key(client, path):
    assert get(client, path, as_visitor("u0")) == (403, {
        "error": "key_not_allowed",
        "message": "this route needs a secret key; a publishable key reads recommendations and posts events only"})
    assert get(client, path, {"x-api-key": ""})[0] == 401
