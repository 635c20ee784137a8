"""One JSON log line and one set of metrics per request, and never a key, a token or a raw user id."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib import telemetry
from chalicelib.resources import Resources
from tests.support import (
    PUBLISHABLE_KEY,
    SECRET_HEADERS,
    SECRET_KEY,
    as_visitor,
    client_for,
    closed_port_url,
    user_token,
)

#: User ids that appear nowhere else, so finding one in the output is finding a leak.
VISITOR, OTHER = "visitor-0c7f55e1", "visitor-9b2d4470"


def records(output: str) -> tuple[list[dict], list[dict]]:
    """The request log lines and the metric blobs printed on stdout."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == "request"], [line for line in lines if "_aws" in line]


def metric_names(blob: dict) -> set[str]:
    return {metric["Name"] for metric in blob["_aws"]["CloudWatchMetrics"][0]["Metrics"]}


@pytest.fixture
def client(settings, model_registry, make_tiny_artifact, tmp_path, capfd):
    model_registry.publish(make_tiny_artifact())
    with client_for(settings, tmp_path, headers={}) as client:
        capfd.readouterr()
        yield client


def test_a_request_gives_one_log_line_and_one_metrics_blob(client, settings, capfd):
    response = client.http.get("/users/u2/recommendations?n=2", headers=as_visitor("u2"))

    assert response.status_code == 200
    [line], [blob] = records(capfd.readouterr().out)
    assert line["service"] == "recommender-api" and line["level"] == "INFO"
    assert {name: line[name] for name in ("method", "route", "status", "caller", "key_id", "strategy")} == {
        "method": "GET", "route": "/users/{user_id}/recommendations", "status": 200, "caller": "publishable",
        "key_id": "test-web", "strategy": "personalized"}
    assert line["model_version"] == json.loads(response.body)["model_version"]
    assert line["request_id"] and line["latency_ms"] > 0
    assert line["user"] == telemetry.user_reference("u2", Resources(settings).log_user_key) != "u2"
    assert blob["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "RecommenderAPI"
    assert blob["route"] == "GET /users/{user_id}/recommendations" and blob["Requests"] == [1.0]
    assert blob["Latency"][0] == pytest.approx(line["latency_ms"], abs=1.0)
    assert blob["ModelReloads"] == [1.0]  # the first request loaded the model


def test_refusals_are_logged_with_their_code_and_counted(client, capfd):
    client.http.get("/popular")
    client.http.get("/users/u2/recommendations", headers=as_visitor("u1"))

    (missing, mismatch), blobs = records(capfd.readouterr().out)
    assert (missing["status"], missing["error"], missing.get("caller")) == (401, "missing_api_key", None)
    assert (mismatch["status"], mismatch["error"]) == (403, "token_user_mismatch")
    assert [blob.get("AuthFailures") for blob in blobs] == [[1.0], [1.0]]


def test_events_accepted_duplicate_and_rejected_are_counted(settings, dynamodb_settings, tmp_path, capfd):
    with client_for(dynamodb_settings, tmp_path) as client:
        def post(events):
            return client.http.post("/events", body=json.dumps({"events": events}),
                                    headers={"Content-Type": "application/json"})

        capfd.readouterr()
        events = [{"user_id": "u1", "item_id": f"i{n}", "event_type": "view", "event_id": f"e{n}"} for n in range(3)]
        post(events[:2])
        post(events)
        post(events + [{"user_id": "u1", "item_id": "i9", "event_type": "teleport"}])

    _, blobs = records(capfd.readouterr().out)
    assert [(blob.get("EventsAccepted"), blob.get("EventsDuplicate"), blob.get("EventsRejected")) for blob in blobs] == [
        ([2.0], [0.0], None), ([1.0], [2.0], None), (None, None, [4.0])]


def test_answers_from_the_model_alone_are_counted_as_fallbacks(settings, model_registry, make_tiny_artifact,
                                                               tmp_path, capfd):
    model_registry.publish(make_tiny_artifact())
    down = replace(settings, dynamodb_endpoint_url=closed_port_url(), realtime_timeout_seconds=0.2)
    with client_for(down, tmp_path) as client:
        capfd.readouterr()
        assert json.loads(client.http.get("/users/u0/recommendations").body)["strategy"] == "personalized_model_only"

    [line], [blob] = records(capfd.readouterr().out)
    assert line["strategy"] == "personalized_model_only" and blob["ModelOnlyAnswers"] == [1.0]


def test_no_key_token_or_raw_user_id_in_any_log_line_or_answer(dynamodb_settings, model_registry,
                                                               make_tiny_artifact, tmp_path, capfd):
    model_registry.publish(make_tiny_artifact())
    token, other_token = user_token(VISITOR), user_token(OTHER)
    answers = []
    with client_for(dynamodb_settings, tmp_path, headers={}) as client:
        def call(method, path, headers, body=None):
            response = client.http.request(method, path, body=json.dumps(body) if body else b"",
                                           headers={"Content-Type": "application/json", **headers})
            answers.append((response.status_code, response.body.decode()))

        visitor = {**as_visitor(), "x-user-token": token}
        call("POST", "/events", visitor, {"events": [{"user_id": VISITOR, "item_id": "i1", "event_type": "click"}]})
        call("GET", f"/users/{VISITOR}/recommendations", visitor)
        call("GET", f"/users/{OTHER}/recommendations", visitor)  # another user's data: refused
        call("POST", "/events", visitor, {"events": [{"user_id": OTHER, "item_id": "i1", "event_type": "click"}]})
        call("POST", "/events", visitor, {"events": [{"user_id": VISITOR, "item_id": "i1", "event_type": "x"}]})
        call("GET", f"/users/{VISITOR}/recommendations", {**as_visitor(), "x-user-token": other_token + "x"})
        call("GET", f"/users/{VISITOR}/recommendations", {"x-api-key": SECRET_KEY + "x"})
        call("DELETE", f"/users/{VISITOR}", visitor)
        call("DELETE", f"/users/{VISITOR}", SECRET_HEADERS)
        call("GET", f"/users/{VISITOR}/recommendations", SECRET_HEADERS)

    output = capfd.readouterr()
    logged = output.out + output.err
    lines, _ = records(output.out)
    assert len(lines) == 10
    assert sorted(status for status, _ in answers) == [200, 200, 200, 202, 400, 403, 403, 403, 403, 403]
    for secret in (PUBLISHABLE_KEY, SECRET_KEY, token, other_token, VISITOR, OTHER):
        assert secret not in logged
        # Error bodies never repeat them; VISITOR's own recommendations do name VISITOR.
        assert not any(secret in body for status, body in answers if status >= 400 or secret != VISITOR)


def test_an_unexpected_error_is_a_json_500_and_logged_with_its_traceback(client, capfd, monkeypatch):
    """A bug answers a bare ``internal_error``: what it says (here a location) goes to the log only."""
    from chalicelib.serving.recommender import Recommender

    def broken(self, *args, **kwargs):
        raise RuntimeError("boom at s3://private-bucket/models/x")

    monkeypatch.setattr(Recommender, "popular", broken)
    response = client.http.get("/popular", headers=SECRET_HEADERS)

    assert response.status_code == 500
    assert json.loads(response.body) == {"error": "internal_error", "message": "an internal error occurred"}
    logged = capfd.readouterr().out
    assert "Traceback" in logged and "private-bucket" in logged
