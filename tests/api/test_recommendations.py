"""The HTTP API end to end: chalice's test client, the real app, models in moto S3."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import JSON_HEADERS

REPO_ROOT = Path(__file__).resolve().parents[2]


def get(client, path):
    response = client.http.get(path)
    return response.status_code, json.loads(response.body)


def post(client, body):
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    raw = raw.encode() if isinstance(raw, str) else raw
    response = client.http.post("/recommendations", body=raw, headers=JSON_HEADERS)
    return response.status_code, json.loads(response.body)


def ranked(answer):
    return [(item["item_id"], item["score"]) for item in answer["items"]]


@pytest.fixture
def tiny_version(model_registry, make_tiny_artifact):
    return model_registry.publish(make_tiny_artifact())


# --- happy paths on the hand-checkable tiny model -------------------------------------------


def test_user_recommendations_rank_unseen_items_by_score(api_client, tiny_version):
    status, answer = get(api_client, "/users/u2/recommendations")

    assert status == 200
    assert answer["user_id"] == "u2"
    assert answer["model_version"] == tiny_version
    assert answer["strategy"] == "personalized"
    assert ranked(answer) == [("i3", 2.0), ("i1", 1.0)]  # i0 and i2 were seen in training


def test_unknown_user_gets_the_popularity_ranking(api_client, tiny_version):
    status, answer = get(api_client, "/users/stranger/recommendations?n=3")

    assert status == 200
    assert answer["model_version"] == tiny_version
    assert answer["strategy"] == "popular"
    assert ranked(answer) == [("i0", 5.0), ("i2", 3.0), ("i3", 2.0)]


def test_similar_items_by_cosine_without_the_item_itself(api_client, tiny_version):
    status, answer = get(api_client, "/items/i0/similar")

    assert status == 200
    assert answer["item_id"] == "i0"
    assert answer["model_version"] == tiny_version
    assert answer["strategy"] == "similar"
    assert [item["item_id"] for item in answer["items"]] == ["i3", "i2", "i1"]
    assert [item["score"] for item in answer["items"]] == pytest.approx([1.0, 0.707107, 0.0], abs=1e-6)


def test_popular_is_capped_by_n(api_client, tiny_version):
    status, answer = get(api_client, "/popular?n=2")

    assert status == 200
    assert answer["model_version"] == tiny_version
    assert answer["strategy"] == "popular"
    assert ranked(answer) == [("i0", 5.0), ("i2", 3.0)]


def test_session_recommendations_fold_in_and_exclude_the_session(api_client, tiny_version):
    status, answer = post(api_client, {"item_ids": ["i0", "not-in-model"], "n": 10})

    assert status == 200
    assert answer["model_version"] == tiny_version
    assert answer["strategy"] == "session"
    assert answer["ignored_item_ids"] == ["not-in-model"]
    # User vector solves ([[6,1],[1,2]] + 0.1 I) x = (1, 0): x = (2.1, -1) / 11.81.
    assert [item["item_id"] for item in answer["items"]] == ["i3", "i2", "i1"]
    assert [item["score"] for item in answer["items"]] == pytest.approx([4.2 / 11.81, 1.1 / 11.81, -1 / 11.81], abs=1e-5)


def test_session_of_unknown_items_only_falls_back_to_popular(api_client, tiny_version):
    status, answer = post(api_client, {"item_ids": ["x", "y"], "n": 2})

    assert status == 200
    assert answer["strategy"] == "popular"
    assert answer["ignored_item_ids"] == ["x", "y"]
    assert ranked(answer) == [("i0", 5.0), ("i2", 3.0)]


def test_ids_and_scores_have_json_types(api_client, tiny_version):
    for path in ("/users/u1/recommendations", "/items/i1/similar", "/popular"):
        status, answer = get(api_client, path)
        assert status == 200
        assert answer["items"], path
        for item in answer["items"]:
            assert set(item) == {"item_id", "score"}
            assert isinstance(item["item_id"], str)
            assert isinstance(item["score"], float)


# --- result counts on the MovieLens sample -------------------------------------------------


@pytest.fixture
def sample_version(model_registry, sample_artifact):
    return model_registry.publish(sample_artifact)


@pytest.mark.parametrize("query, expected", [("", 10), ("?n=1", 1), ("?n=100", 100)])
def test_result_count_defaults_to_10_and_accepts_up_to_100(api_client, sample_version, query, expected):
    for path in ("/users/196/recommendations", "/items/50/similar", "/popular"):
        status, answer = get(api_client, path + query)
        assert status == 200, path
        assert answer["model_version"] == sample_version
        assert len(answer["items"]) == expected, path
        ids = [item["item_id"] for item in answer["items"]]
        assert len(set(ids)) == expected and all(isinstance(i, str) for i in ids)


def test_session_count_defaults_to_10(api_client, sample_version):
    status, answer = post(api_client, {"item_ids": ["50", "181"]})

    assert status == 200
    assert answer["strategy"] == "session"
    assert len(answer["items"]) == 10
    assert not {"50", "181"} & {item["item_id"] for item in answer["items"]}


def test_count_sent_as_a_digit_string_is_accepted(api_client, tiny_version):
    # check_count documents that decimal-digit strings are accepted (query parameters use them).
    status, answer = post(api_client, {"item_ids": ["i0"], "n": "2"})

    assert status == 200
    assert len(answer["items"]) == 2


# --- health and errors the model produces ---------------------------------------------------


def test_health_describes_the_live_model_to_a_secret_key(api_client, tiny_version):
    status, health = get(api_client, "/health")

    assert status == 200
    assert health["status"] == "ok"
    assert health["model_version"] == tiny_version
    assert health["counts"] == {"users": 3, "items": 4, "interactions": 3, "factors": 2}
    assert health["loaded_at"] and "T" in health["loaded_at"]
    assert health["last_refresh_error"] is None


def test_health_without_a_key_says_only_ok_or_degraded(api_client, tiny_version):
    response = api_client.http.get("/health", headers={"x-api-key": None})

    assert (response.status_code, json.loads(response.body)) == (200, {"status": "ok"})


def test_health_with_nothing_published_is_degraded_and_503(api_client):
    public = api_client.http.get("/health", headers={"x-api-key": None})
    status, details = get(api_client, "/health")

    assert (public.status_code, json.loads(public.body)) == (503, {"status": "degraded"})
    assert status == 503 and details["status"] == "degraded" and details["model_version"] is None
    assert details["last_refresh_error"] == "no model version has been published"


@pytest.mark.parametrize("path", ["/popular", "/users/u0/recommendations"])
def test_nothing_published_is_503_model_unavailable(api_client, path):
    status, body = get(api_client, path)

    assert status == 503
    assert body["error"] == "model_unavailable"
    assert body["message"]


def test_similar_to_unknown_item_is_404(api_client, tiny_version):
    status, body = get(api_client, "/items/i9/similar")

    assert status == 404
    assert body["error"] == "item_not_found"
    assert "i9" in body["message"]


# --- bad input: always a 400 naming the field, never a 500 ----------------------------------


@pytest.mark.parametrize(
    "path, field",
    [
        ("/popular?n=0", "n"),
        ("/popular?n=101", "n"),
        ("/popular?n=abc", "n"),
        ("/popular?n=1.5", "n"),
        ("/popular?n=-3", "n"),
        ("/popular?n=", "n"),
        ("/popular?limit=5", "limit"),
        ("/users/u0/recommendations?n=0", "n"),
        ("/users/u0/recommendations?count=3", "count"),
        ("/items/i0/similar?n=101", "n"),
        ("/users/" + "u" * 257 + "/recommendations", "user_id"),
        ("/items/" + "i" * 257 + "/similar", "item_id"),
    ],
)
def test_bad_query_or_path_is_400(api_client, tiny_version, path, field):
    status, body = get(api_client, path)

    assert status == 400
    assert body["error"] == "invalid_request"
    assert body["field"] == field
    assert body["message"]


@pytest.mark.parametrize(
    "body, field",
    [
        pytest.param(b'{"item_ids": ["i0"', "body", id="malformed-json"),
        pytest.param(b'["i0"]', "body", id="body-is-a-list"),
        pytest.param(b"", "body", id="empty-body"),
        pytest.param(b"\xff\xfe", "body", id="not-utf8"),
        pytest.param({"n": 3}, "item_ids", id="item_ids-missing"),
        pytest.param({"item_ids": "i0"}, "item_ids", id="item_ids-a-string"),
        pytest.param({"item_ids": [7]}, "item_ids[0]", id="id-is-a-number"),
        pytest.param({"item_ids": ["i0", ""]}, "item_ids[1]", id="empty-string-id"),
        pytest.param({"item_ids": ["i0"] * 501}, "item_ids", id="501-ids"),
        pytest.param({"item_ids": ["i" * 257]}, "item_ids[0]", id="257-char-id"),
        pytest.param({"item_ids": ["i0", "i\u0001"]}, "item_ids[1]", id="control-character"),
        pytest.param({"item_ids": ["i0"], "n": True}, "n", id="n-true"),
        pytest.param({"item_ids": ["i0"], "n": 2.5}, "n", id="n-float"),
        pytest.param({"item_ids": ["i0"], "n": 0}, "n", id="n-zero"),
        pytest.param({"item_ids": ["i0"], "n": 101}, "n", id="n-101"),
        pytest.param({"item_ids": ["i0"], "n": None}, "n", id="n-null"),
        pytest.param({"item_ids": ["i0"], "user": "u0"}, "user", id="unknown-field"),
        # Regression: json.loads raised RecursionError, which escaped as a 500.
        pytest.param(b"[" * 10_000 + b"]" * 10_000, "body", id="deeply-nested-json"),
    ],
)
def test_bad_session_body_is_400(api_client, tiny_version, body, field):
    status, answer = post(api_client, body)

    assert status == 400
    assert answer["error"] == "invalid_request"
    assert answer["field"] == field
    assert answer["message"]


def test_a_session_at_the_limits_is_accepted(api_client, tiny_version):
    status, answer = post(api_client, {"item_ids": ["i0"] * 499 + ["x" * 256], "n": 100})

    assert status == 200
    assert answer["ignored_item_ids"] == ["x" * 256]


# --- packaging --------------------------------------------------------------------------------


def test_importing_the_app_does_not_import_training_libraries():
    script = (
        "import sys, app; bad=[m for m in ('scipy','implicit') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)

    assert result.returncode == 0, result.stdout + result.stderr


# --- path ids read alike by chalice local and API Gateway -------------------------------------


# Regression: chalice local passed path ids raw, API Gateway decoded them: `/users/%00` was user
# "%00" locally and a control character in production, `/users/u%30` user "u%30" or "u0".
def test_path_ids_are_percent_decoded_whatever_decoded_them_before(api_client, tiny_version):
    status, answer = get(api_client, "/users/u%30/recommendations")
    assert (status, answer["user_id"], answer["strategy"]) == (200, "u0", "personalized")
    status, answer = get(api_client, "/users/u%2530/recommendations")  # API Gateway hands us "u%30"
    assert (status, answer["user_id"]) == (200, "u0")
    status, answer = get(api_client, "/items/i%30/similar")
    assert (status, answer["item_id"]) == (200, "i0")
    for path, field in (("/users/%00/recommendations", "user_id"), ("/users/%2500/recommendations", "user_id"),
                        ("/users/u0%20/recommendations", "user_id"), ("/items/%E2%80%AEi0/similar", "item_id"),
                        ("/items/%FF/similar", "item_id")):
        status, answer = get(api_client, path)
        assert (status, answer["error"], answer["field"]) == (400, "invalid_request", field), path
    erased = api_client.http.delete("/users/%00")
    assert (erased.status_code, erased.json_body["field"]) == (400, "user_id")


def test_every_route_describes_its_items_from_the_catalog_and_keeps_the_others_by_id(api_client, tiny_version,
                                                                                     resources):
    from chalicelib.catalog.item import CatalogItem

    resources.catalog.put([CatalogItem("i0", "Item zero", url="https://shop.example/i0", categories=("toys",)),
                           CatalogItem("i2", "Item two")])
    answers = [
        api_client.http.get("/users/u1/recommendations?n=4"),
        api_client.http.get("/items/i1/similar?n=3"),
        api_client.http.get("/popular?n=4"),
        api_client.http.post("/recommendations", body=json.dumps({"item_ids": ["i1"], "n": 3}),
                             headers={"Content-Type": "application/json"}),
    ]
    for response in answers:
        assert response.status_code == 200, response.body
        items = {entry["item_id"]: entry for entry in json.loads(response.body)["items"]}
        assert items["i0"]["title"] == "Item zero" and items["i0"]["categories"] == ["toys"]
        assert items["i2"]["title"] == "Item two"
        assert all(set(entry) == {"item_id", "score"} for item_id, entry in items.items() if item_id in ("i1", "i3"))
