"""What tests share besides fixtures: the tiny model, an app client, and every fake.

The fakes never replace our own storage code: they sit between it and a real
client or connection (to an emulator on 127.0.0.1) and inject AWS's failures.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import socket
import threading
from collections import Counter
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator
from urllib.parse import parse_qsl

import boto3
import numpy as np
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from pynamodb.exceptions import GetError, PutError

from chalicelib.access.keys import hash_key
from chalicelib.access.tokens import make_user_token
from chalicelib.config import PUBLISHABLE, SECRET, ApiKeyConfig, Settings, SigningSecretConfig, environment_of
from chalicelib.models.artifact import ModelArtifact, make_artifact, make_segments_entry
from chalicelib.resources import reset_app_resources
from local_aws.stack import free_port

JSON_HEADERS = {"Content-Type": "application/json"}

# --- keys and tokens of the test stage --------------------------------------------------------------

PUBLISHABLE_KEY = "pk_test_publishable_0123456789abcdefghijklmnop"
SECRET_KEY = "sk_test_secret_0123456789abcdefghijklmnopqrstu"
SIGNING_SECRET = "test-signing-secret-0123456789-abcdefghij"
SHOP_ORIGIN = "https://shop.example"
TEST_KEYS = {
    "publishable_keys": (ApiKeyConfig("test-web", PUBLISHABLE, hash_key(PUBLISHABLE_KEY), frozenset({SHOP_ORIGIN})),),
    "secret_keys": (ApiKeyConfig("test-server", SECRET, hash_key(SECRET_KEY)),),
    "user_token_secrets": (SigningSecretConfig("test-2026", value=SIGNING_SECRET),),
}
#: What tests send unless they say otherwise: the secret key may act for any user.
SECRET_HEADERS = {"x-api-key": SECRET_KEY}


def user_token(user_id: str, ttl_seconds: int = 3600, now: float | None = None) -> str:
    """A token of the test stage vouching for *user_id*."""
    return make_user_token(user_id, SIGNING_SECRET, "test-2026", ttl_seconds, now)


def as_visitor(user_id: str | None = None, origin: str | None = SHOP_ORIGIN) -> dict[str, str | None]:
    """Headers of a page on *origin* with the publishable key (and *user_id*'s token)."""
    headers: dict[str, str | None] = {"x-api-key": PUBLISHABLE_KEY}
    if origin is not None:
        headers["origin"] = origin
    if user_id is not None:
        headers["x-user-token"] = user_token(user_id)
    return headers


# --- the tiny model ---------------------------------------------------------------------------------


def tiny_artifact(**overrides: object) -> ModelArtifact:
    """A hand-checkable model: 3 users, 4 items, 2 factors.

    Item factors (rows i0..i3): (1,0), (0,1), (1,1), (2,0).
    User u0 = (1,0) saw i3; u1 = (0,1) saw nothing; u2 = (1,1) saw i0 and i2.
    Popularity i0..i3 = 5, 1, 3, 2; regularization 0.1, alpha 1.
    """
    fields: dict[str, object] = dict(
        item_factors=np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32),
        user_factors=np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32),
        user_ids=["u0", "u1", "u2"],
        item_ids=["i0", "i1", "i2", "i3"],
        item_popularity=np.array([5, 1, 3, 2], dtype=np.float32),
        seen_indptr=np.array([0, 1, 1, 3]),
        seen_indices=np.array([3, 0, 2]),
        algorithm="test",
        hyperparameters={"regularization": 0.1, "alpha": 1.0},
        training_cutoff="2026-01-01T00:00:00+00:00",
    )
    fields.update(overrides)
    return make_artifact(**fields)  # type: ignore[arg-type]


#: The manifest entry of :func:`with_tiny_index`'s index: two lists each way.
TINY_INDEX_ENTRY = {"lists": 2, "probes": 1, "similar_probes": 1, "target_recall_at_10": 0.99}


def with_tiny_index(artifact: ModelArtifact, **entry: object) -> ModelArtifact:
    """*artifact* (the tiny model) with a hand-made approximate index, its entry updated by *entry*.

    Factor lists: rows {i0, i1} around (0.5, 0.5) and {i2, i3} around (1.5, 0.5); direction lists:
    {i0, i3} along (1, 0) and {i1, i2} along (0, 1) (rows listed as 0, 3, 1, 2).
    """
    return replace(
        artifact,
        ivf_centroids=np.array([[0.5, 0.5], [1.5, 0.5]], dtype=np.float32),
        ivf_offsets=np.array([0, 2, 4], dtype=np.int64),
        ivf_similar_centroids=np.array([[1, 0], [0, 1]], dtype=np.float32),
        ivf_similar_offsets=np.array([0, 2, 4], dtype=np.int64),
        ivf_similar_rows=np.array([0, 3, 1, 2], dtype=np.int32),
        approximate_index={**TINY_INDEX_ENTRY, **entry},
    )


def with_tiny_segments(artifact: ModelArtifact) -> ModelArtifact:
    """*artifact* (the tiny model) with two hand-made segments: 0 = {u0, u2} along (1, 0)..(1, 1), described
    by i3 then i0 (what they saw); 1 = {u1} along (0, 1), described by i1."""
    return replace(
        artifact,
        user_segments=np.array([0, 1, 0], dtype=np.int16),
        segment_centroids=np.array([[0.92, 0.38], [0, 1]], dtype=np.float32),
        segments=make_segments_entry(
            [2, 1], [[{"item_id": "i3", "users": 1, "lift": 1.5}, {"item_id": "i0", "users": 1, "lift": 1.5}],
                     [{"item_id": "i1", "users": 1, "lift": 3.0}]], method="by hand"),
    )


def clustered_artifact(n_clusters: int = 30, per_cluster: int = 100, factors: int = 8, n_users: int = 300,
                       held_out: int = 200, seed: int = 7) -> tuple[ModelArtifact, np.ndarray]:
    """A synthetic model whose items form well-separated clusters, and user vectors held out of it.

    Cluster centres are random directions of length 3; items lie around them (noise 0.3 per factor),
    shuffled so that no cluster is a block of rows, under shuffled ids. Users, trained and held out,
    lie around a random centre (noise 0.5). Each trained user saw their three best items by exact
    score, so excluding what they saw changes their answers, and two random ones.
    """
    rng = np.random.default_rng(seed)
    n_items = n_clusters * per_cluster
    centres = rng.normal(size=(n_clusters, factors))
    centres *= 3 / np.linalg.norm(centres, axis=1, keepdims=True)
    items = np.repeat(centres, per_cluster, axis=0) + rng.normal(scale=0.3, size=(n_items, factors))
    items = items[rng.permutation(n_items)].astype(np.float32)

    def near_centres(count: int) -> np.ndarray:
        return (centres[rng.integers(0, n_clusters, count)]
                + rng.normal(scale=0.5, size=(count, factors))).astype(np.float32)

    users, held = near_centres(n_users), near_centres(held_out)
    best = np.argsort(-(users @ items.T), axis=1, kind="stable")[:, :3]
    seen = [np.unique(np.concatenate([top, rng.integers(0, n_items, 2)])) for top in best]
    artifact = make_artifact(
        item_factors=items,
        user_factors=users,
        user_ids=[f"user-{u:04d}" for u in rng.permutation(n_users)],
        item_ids=[f"item-{i:05d}" for i in rng.permutation(n_items)],
        item_popularity=rng.integers(1, 50, n_items).astype(np.float32),
        seen_indptr=np.concatenate([[0], np.cumsum([len(rows) for rows in seen])]),
        seen_indices=np.concatenate(seen),
        seen_values=rng.uniform(1, 5, sum(len(rows) for rows in seen)),
        algorithm="synthetic",
        hyperparameters={"regularization": 0.1, "alpha": 1.0},
    )
    return artifact, held


def publish_versions(registry: Any, make_artifact: Any, count: int, **overrides: Any) -> list[str]:
    """Publish *count* versions and make the newest live; their ids, oldest first.

    Versions published within one second are ordered by their random suffix,
    not by publish order, so the tests use the ids' sort order throughout.
    """
    versions = sorted(registry.publish(make_artifact(**overrides), make_live=False) for _ in range(count))
    registry.set_live(versions[-1])
    return versions


def put_model_object(resources: Any, key: str, body: bytes) -> None:
    """Write *body* at *key* under the model prefix, behind the registry's back."""
    settings = resources.settings
    resources.s3.put_object(Bucket=settings.model_bucket, Key=f"{settings.model_prefix}/{key}", Body=body)


def load_script(name: str) -> Any:
    """``scripts/<name>.py`` as a module, so its ``main`` can be called in-process."""
    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"{name}_cli", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- the app ---------------------------------------------------------------------------------------


def write_stage_config(project_dir: Path, stage: str, settings: Settings) -> None:
    """A ``.chalice/config.json`` whose *stage* points at *settings*' resources."""
    env = environment_of(settings)
    config = {"version": "2.0", "app_name": "recommender-api", "stages": {stage: {"environment_variables": env}}}
    (project_dir / ".chalice").mkdir(parents=True, exist_ok=True)
    (project_dir / ".chalice" / "config.json").write_text(json.dumps(config))


# --- the API's contract ----------------------------------------------------------------------------

#: Where the committed OpenAPI document says the demo serves.
SPEC_SERVER = "http://127.0.0.1:8000"


@functools.cache
def openapi_contract() -> Any:
    """The committed OpenAPI document, checked against the 3.1 schema and ready to validate answers."""
    from openapi_core import OpenAPI

    from chalicelib.api.docs import openapi_document

    return OpenAPI.from_dict(openapi_document())


def check_answer_conforms(method: str, path: str, headers: dict[str, str], body: bytes | str,
                          response: Any) -> None:
    """Fail unless *response* is an answer the OpenAPI document allows for this request.

    Two kinds of answer are not the app's and are left out: CORS preflights
    (``OPTIONS``, documented in prose) and Chalice's own answer to a path or
    method no route serves (API Gateway answers those in production).
    """
    from openapi_core.templating.paths.exceptions import PathError
    from openapi_core.testing import MockRequest, MockResponse

    if method.upper() == "OPTIONS":
        return
    bare_path, _, query = path.partition("?")
    request = MockRequest(SPEC_SERVER, method.lower(), bare_path, args=dict(parse_qsl(query)), headers=headers,
                          data=body.encode() if isinstance(body, str) else body)
    content_type = response.headers.get("Content-Type") or response.headers.get("content-type") or ""
    answer = MockResponse(response.body, status_code=response.status_code, headers=response.headers,
                          content_type=content_type.split(";")[0])
    try:
        openapi_contract().validate_response(request, answer)
    except PathError:
        if response.status_code in (403, 404, 405) and b'"error"' not in response.body:
            return  # no route of ours serves this path or method
        raise


class HeadersByDefault:
    """chalice's test HTTP client, sending *defaults* with every request and checking every answer
    against the OpenAPI document.

    A request's own headers win; one given as None is left out (``{"x-api-key": None}``).
    """

    def __init__(self, http: Any, defaults: dict[str, str]) -> None:
        self._http = http
        self._defaults = defaults

    def request(self, method: str, path: str, headers: dict[str, str | None] | None = None,
                body: bytes | str = b"") -> Any:
        merged = {**self._defaults, **(headers or {})}
        sent = {k: v for k, v in merged.items() if v is not None}
        response = self._http.request(method, path, headers=sent, body=body)
        check_answer_conforms(method, path, sent, body, response)
        return response

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.request("DELETE", path, **kwargs)

    def options(self, path: str, **kwargs: Any) -> Any:
        return self.request("OPTIONS", path, **kwargs)


@contextlib.contextmanager
def client_for(settings: Settings, project_dir: Path, headers: dict[str, str] | None = None) -> Iterator[Any]:
    """A ``chalice.test.Client`` for the app, configured through a stage file for *settings*.

    Its ``http`` sends *headers* with every request (by default the secret
    key, which may call every route for any user). The app's resources are
    dropped before and after, so it reads these settings afresh.
    """
    from chalice.test import Client

    import app

    write_stage_config(project_dir, "test", settings)
    reset_app_resources()
    try:
        with Client(app.app, stage_name="test", project_dir=str(project_dir)) as client:
            yield SimpleNamespace(http=HeadersByDefault(client.http, SECRET_HEADERS if headers is None else headers))
    finally:
        reset_app_resources()


# --- S3 --------------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ClientProxy:
    """Forwards to a real boto3 client, which can be swapped, and counts S3 ``get_object`` keys."""

    def __init__(self, target: Any) -> None:
        self.target = target
        self.gets: Counter[str] = Counter()

    def get_object(self, **kwargs: Any) -> Any:
        self.gets[kwargs["Key"]] += 1
        return self.target.get_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


class RecordingS3:
    """A real S3 client that records, for each put, the keys already in the bucket."""

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket
        self.puts: list[tuple[str, set[str]]] = []

    def keys(self) -> set[str]:
        listing = self._client.list_objects_v2(Bucket=self._bucket)
        return {entry["Key"] for entry in listing.get("Contents", [])}

    def put_object(self, **kwargs: Any) -> Any:
        self.puts.append((kwargs["Key"], self.keys()))
        return self._client.put_object(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)


def unreachable_client(service: str) -> Any:
    """A boto3 client of *service* whose endpoint nothing listens on; fails fast, no retries."""
    return boto3.session.Session().client(
        service, region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{free_port()}",
        config=Config(connect_timeout=0.5, read_timeout=0.5, retries={"max_attempts": 1, "mode": "standard"}),
    )


def unreachable_s3_client() -> Any:
    """An S3 client whose endpoint nothing listens on; fails fast, no retries."""
    return unreachable_client("s3")


# --- DynamoDB --------------------------------------------------------------------------------------


def _throttling(error_type: type[Exception], operation: str) -> Exception:
    code = {"Code": "ProvisionedThroughputExceededException", "Message": "injected"}
    return error_type("injected throttling", ClientError({"Error": code}, operation))


class FlakyTable:
    """A real pynamodb table connection with DynamoDB's partial failures scripted in.

    ``writes`` / ``reads``: one fault per batch call, in order; later calls
    pass through untouched. A fault is

    * ``"throttle"``: the call raises ProvisionedThroughputExceededException, nothing done;
    * ``"half"``: the first half of the requests is done, the rest comes back unprocessed;
    * ``"first"``: only the first request is done, the rest comes back unprocessed.

    Puts of events in ``never_store`` always come back unprocessed. Every
    write call's size and every write request really sent are recorded.
    """

    def __init__(self, real: Any, *, writes: list[str] = (), reads: list[str] = (), never_store: set[str] = ()):
        self._real = real
        self.table_name = real.table_name
        self._faults = {"write": list(writes), "read": list(reads)}
        self._never_store = set(never_store)
        self._lock = threading.Lock()
        self.write_calls: list[int] = []
        self.forwarded: list[dict] = []

    @property
    def faults_left(self) -> int:
        return sum(map(len, self._faults.values()))

    def _next_fault(self, kind: str) -> str | None:
        with self._lock:
            return self._faults[kind].pop(0) if self._faults[kind] else None

    @staticmethod
    def _split(requests: list, fault: str | None) -> tuple[list, list]:
        """(done, held back) for *fault*."""
        if fault == "half":
            return requests[:len(requests) // 2], requests[len(requests) // 2:]
        if fault == "first":
            return requests[:1], requests[1:]
        return requests, []

    def batch_write_item(self, put_items: list | None = None, delete_items: list | None = None) -> dict:
        requests = list(put_items or delete_items)
        with self._lock:
            self.write_calls.append(len(requests))
        fault = self._next_fault("write")
        if fault == "throttle":
            raise _throttling(PutError, "BatchWriteItem")
        never = [item for item in requests if put_items and item.get("event_id", {}).get("S") in self._never_store]
        send, held = self._split([item for item in requests if item not in never], fault)
        held += never
        argument, request_name, payload_name = (
            ("put_items", "PutRequest", "Item") if put_items else ("delete_items", "DeleteRequest", "Key"))
        response = self._real.batch_write_item(**{argument: send}) if send else {}
        with self._lock:
            self.forwarded.extend(send)
        unprocessed = response.get("UnprocessedItems", {}).get(self.table_name, [])
        unprocessed += [{request_name: {payload_name: item}} for item in held]
        return {"UnprocessedItems": {self.table_name: unprocessed} if unprocessed else {}}

    def batch_get_item(self, keys: list, consistent_read: bool | None = None,
                       attributes_to_get: list | None = None) -> dict:
        fault = self._next_fault("read")
        if fault == "throttle":
            raise _throttling(GetError, "BatchGetItem")
        ask, held = self._split(list(keys), fault)
        response = self._real.batch_get_item(ask, consistent_read=consistent_read,
                                             attributes_to_get=attributes_to_get) if ask else {}
        held += response.get("UnprocessedKeys", {}).get(self.table_name, {}).get("Keys", [])
        answer = {"Responses": {self.table_name: response.get("Responses", {}).get(self.table_name, [])}}
        if held:
            answer["UnprocessedKeys"] = {self.table_name: {"Keys": held}}
        return answer


def closed_port_url() -> str:
    """The URL of a port on 127.0.0.1 that refuses connections."""
    return f"http://127.0.0.1:{free_port()}"


@contextlib.contextmanager
def silent_endpoint() -> Iterator[tuple[str, list[socket.socket]]]:
    """An endpoint on 127.0.0.1 that accepts connections and never answers; yields (url, connections)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop, held = threading.Event(), []

    def accept() -> None:
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except (TimeoutError, socket.timeout):
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    finally:
        stop.set()
        thread.join(timeout=2)
        for connection in held:
            connection.close()
        listener.close()


def skip_unless_ci(what: str, reason: str | None) -> None:
    """Skip the test when *reason* says why *what* cannot run here; in CI (``CI`` set), fail instead."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"{what} cannot run in CI: {reason}")
    pytest.skip(reason)



# --- the weekly insights report ------------------------------------------------------------------------


def content_row(key: str, views: int, previous_views: int, *, title: str | None = None, clicks: int = 0,
                add_to_carts: int = 0, purchases: int = 0, distinct_users: int | None = None) -> Any:
    """A :class:`chalicelib.reports.weekly.ContentRow` whose rates and change follow from its counts."""
    from chalicelib.reports.weekly import ContentRow

    return ContentRow(
        key=key, title=title, views=views, clicks=clicks, add_to_carts=add_to_carts, purchases=purchases,
        distinct_users=views if distinct_users is None else distinct_users,
        click_through_rate=clicks / views if views else None, conversion_rate=purchases / views if views else None,
        previous_views=previous_views,
        change=(views - previous_views) / previous_views if previous_views else None)


class FakeInsightsSource:
    """An in-memory stand-in for the content counters and trending (``InsightsSource``).

    Sorts as the upstream interface promises (views: most first; change: lowest
    first; conversion_rate: highest first) and records each call.
    """

    def __init__(self, items: list[Any] = (), categories: list[Any] = (), trending: list[Any] = ()) -> None:
        self._items, self._categories, self._trending = list(items), list(categories), list(trending)
        self.calls: list[tuple[Any, ...]] = []

    def items(self, window: str, sort: str, limit: int) -> list[Any]:
        self.calls.append(("items", window, sort, limit))
        if sort == "views":
            return sorted(self._items, key=lambda row: -row.views)[:limit]
        assert sort == "change", sort
        return sorted(self._items, key=lambda row: (row.change is None, row.change or 0.0))[:limit]

    def categories(self, window: str, sort: str, limit: int) -> list[Any]:
        self.calls.append(("categories", window, sort, limit))
        assert sort == "conversion_rate", sort
        return sorted(self._categories, key=lambda row: -(row.conversion_rate or 0.0))[:limit]

    def trending(self, limit: int) -> list[Any]:
        self.calls.append(("trending", limit))
        return self._trending[:limit]


class WebhookReceiver:
    """A chat's incoming webhook on 127.0.0.1 (http.server in a thread) that records each request.

    *answers* are (status, body, headers) given in turn, the last one repeated;
    ``requests`` holds (content type, body bytes) of each POST received.
    """

    def __init__(self, answers: list[tuple[int, str, dict[str, str]]] | None = None) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.answers = list(answers or [(200, "ok", {})])
        self.requests: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.requests.append((self.headers.get("Content-Type", ""), body))
                status, text, headers = receiver.answers[min(len(receiver.requests), len(receiver.answers)) - 1]
                payload = text.encode()
                self.send_response(status)
                for name, value in {"Content-Type": "text/plain", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:  # quiet: pytest shows what failed
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """The webhook's URL, with a path and a token-like part as real ones have."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/services/T000/B000/secret-token"

    def __enter__(self) -> "WebhookReceiver":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=2)
