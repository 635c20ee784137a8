"""LiveModel against a real model store on moto: first load, refresh, swap, and failures."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timezone

import numpy as np
import pytest

from chalicelib.errors import ModelUnavailable
from chalicelib.models.artifact import serialize
from chalicelib.models.registry import ModelRegistry
from chalicelib.serving.live_model import LiveModel
from tests.support import TINY_INDEX_ENTRY, ClientProxy, FakeClock, unreachable_s3_client, with_tiny_index


@pytest.fixture
def proxy(resources):
    return ClientProxy(resources.s3)


@pytest.fixture
def store(proxy, settings):
    """A registry (to publish) whose reads LiveModel makes through the counting proxy."""
    return ModelRegistry(proxy, settings.model_bucket, settings.model_prefix)


@pytest.fixture
def clock():
    return FakeClock()


def details(live):
    """The body of ``GET /health`` for a secret key."""
    return live.health(details=True)[1]


def popular_ids(recommender):
    return recommender.popular(4).item_ids


def upload_broken(resources, store, make_tiny_artifact, version, kind):
    """Write *version* to S3 behind the store's back, broken as *kind*, and point latest.json at it."""
    payload, manifest = serialize(make_tiny_artifact(), version, datetime.now(timezone.utc).isoformat())
    if kind == "garbage-npz":
        payload = b"this is not an npz file"
        manifest["sha256"] = hashlib.sha256(payload).hexdigest()
    elif kind == "truncated-npz":
        payload = payload[: len(payload) // 2]
        manifest["sha256"] = hashlib.sha256(payload).hexdigest()
    elif kind == "wrong-sha":
        manifest["sha256"] = "0" * 64
    settings = resources.settings
    prefix = f"{settings.model_prefix}/{version}"
    resources.s3.put_object(Bucket=settings.model_bucket, Key=f"{prefix}/model.npz", Body=payload)
    resources.s3.put_object(Bucket=settings.model_bucket, Key=f"{prefix}/manifest.json",
                            Body=json.dumps(manifest).encode())
    store.set_live(version)
    return f"{prefix}/model.npz"


# --- first load -----------------------------------------------------------------------------


def test_loads_the_published_version_on_first_use(store, make_tiny_artifact, clock):
    version = store.publish(make_tiny_artifact())
    live = LiveModel(store, 60, clock=clock)

    recommender = live.recommender()

    assert recommender.version == version
    assert popular_ids(recommender) == ["i0", "i2", "i3", "i1"]
    assert live.health() == (200, {"status": "ok"})
    assert details(live)["model_version"] == version


def test_nothing_published_raises_model_unavailable(store, clock):
    live = LiveModel(store, 60, clock=clock)

    with pytest.raises(ModelUnavailable, match="no model version has been published"):
        live.recommender()
    assert live.health() == (503, {"status": "degraded"})


# --- approximate search ---------------------------------------------------------------------


@pytest.mark.parametrize("minimum, in_use", [(0, True), (4, True), (5, False), (None, False)],
                         ids=["from-0", "from-4-items", "from-5-items", "never"])
def test_health_shows_the_approximate_index_and_whether_answers_use_it(store, make_tiny_artifact, clock,
                                                                      minimum, in_use):
    store.publish(with_tiny_index(make_tiny_artifact()))  # 4 items
    live = LiveModel(store, 60, clock=clock, approximate_min_items=minimum)
    assert details(live)["approximate_search"] == {**TINY_INDEX_ENTRY, "in_use": in_use}
    assert (live.recommender().approximate is not None) is in_use


def test_health_shows_no_approximate_search_for_a_model_without_an_index(store, make_tiny_artifact, clock):
    assert details(LiveModel(store, 60, clock=clock, approximate_min_items=0))["approximate_search"] is None  # none yet
    store.publish(make_tiny_artifact())
    live = LiveModel(store, 60, clock=clock, approximate_min_items=0)
    assert details(live)["model_version"] is not None
    assert details(live)["approximate_search"] is None


# --- refresh and swap -----------------------------------------------------------------------


def test_new_version_is_picked_up_only_after_the_refresh_interval(store, make_tiny_artifact, clock):
    v1 = store.publish(make_tiny_artifact())
    live = LiveModel(store, 60, clock=clock)
    assert live.recommender().version == v1

    v2 = store.publish(make_tiny_artifact(item_popularity=np.array([1, 2, 3, 4])))
    clock.now += 59.9
    assert live.recommender().version == v1

    clock.now += 0.1
    assert live.recommender().version == v1  # the refresh runs in the background: no request waits on S3
    live.wait_for_refresh()
    assert live.recommender().version == v2
    assert popular_ids(live.recommender()) == ["i3", "i2", "i1", "i0"]


def test_a_recommender_in_hand_keeps_answering_from_its_version(store, make_tiny_artifact, clock):
    v1 = store.publish(make_tiny_artifact())
    live = LiveModel(store, 0, clock=clock)
    in_flight = live.recommender()
    before = in_flight.popular(4).to_json()

    v2 = store.publish(make_tiny_artifact(item_popularity=np.array([1, 2, 3, 4])))
    live.recommender()
    live.wait_for_refresh()
    current = live.recommender()

    assert current.version == v2
    assert current.popular(4).to_json()["items"] != before["items"]
    assert in_flight.version == v1
    assert in_flight.popular(4).to_json() == before


# --- a broken new version -------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "garbage-npz",
        "wrong-sha",
        "truncated-npz",  # regression: BadZipFile escaped LiveModel and broke serving
    ],
)
def test_a_broken_version_is_refused_once_and_v1_keeps_serving(
    resources, proxy, store, make_tiny_artifact, clock, kind
):
    v1 = store.publish(make_tiny_artifact())
    live = LiveModel(store, 0, clock=clock)
    assert live.recommender().version == v1

    broken_key = upload_broken(resources, store, make_tiny_artifact, "v2-broken", kind)
    before = proxy.gets.copy()
    for _ in range(3):
        clock.now += 1
        assert live.recommender().version == v1
        live.wait_for_refresh()

    health = details(live)
    assert health["model_version"] == v1
    assert "v2-broken" in health["last_refresh_error"]
    gets = proxy.gets - before
    assert gets["models/latest.json"] >= 3  # the pointer was re-read on every refresh...
    assert gets[broken_key] == 1  # ...but the refused version was downloaded once
    assert gets["models/v2-broken/manifest.json"] == 1

    live.wait_for_refresh()
    v3 = store.publish(make_tiny_artifact(item_popularity=np.array([1, 2, 3, 4])))
    clock.now += 1
    live.recommender()
    live.wait_for_refresh()
    assert live.recommender().version == v3
    assert popular_ids(live.recommender()) == ["i3", "i2", "i1", "i0"]
    assert details(live)["last_refresh_error"] is None


def test_a_broken_first_version_leaves_nothing_to_serve(resources, store, make_tiny_artifact, clock):
    upload_broken(resources, store, make_tiny_artifact, "v1-broken", "wrong-sha")
    live = LiveModel(store, 0, clock=clock)

    with pytest.raises(ModelUnavailable, match="v1-broken"):
        live.recommender()


# Regression (reliability audit): a cold instance whose pointer named a broken version answered 503
# although an older valid version existed, and /health said ok.
def test_a_cold_instance_serves_the_newest_valid_version_when_the_pointer_names_a_broken_one(
    resources, store, make_tiny_artifact, clock
):
    store.publish(make_tiny_artifact())
    v2 = store.publish(make_tiny_artifact(item_popularity=np.array([1, 2, 3, 4])))
    upload_broken(resources, store, make_tiny_artifact, "v3-broken", "truncated-npz")
    live = LiveModel(store, 0, clock=clock)

    assert live.recommender().version == v2
    code, health = live.health(details=True)
    assert (code, health["status"], health["model_version"]) == (200, "degraded", v2)
    assert "v3-broken" in health["last_refresh_error"] and v2 in health["last_refresh_error"]
    assert live.health() == (200, {"status": "degraded"})


def test_a_refresh_never_holds_up_a_request(store, make_tiny_artifact, clock):
    """While a model is served, the pointer is read in the background, so a stalled S3 stalls no one."""
    v1 = store.publish(make_tiny_artifact())
    live = LiveModel(store, 60, clock=clock)
    live.recommender()
    stalled, release = threading.Event(), threading.Event()
    original = store.live_version

    def stalled_pointer():
        stalled.set()
        release.wait(10)
        return original()

    store.live_version = stalled_pointer
    clock.now += 61
    started = time.monotonic()
    assert live.recommender().version == v1
    assert stalled.wait(5)  # the refresh is under way...
    assert live.recommender().version == v1  # ...and requests go on with the model in hand
    assert time.monotonic() - started < 1
    release.set()
    live.wait_for_refresh()


def test_a_cold_instance_that_just_failed_answers_503_at_once(settings, clock):
    store = ModelRegistry(unreachable_s3_client(), settings.model_bucket, settings.model_prefix)
    live = LiveModel(store, 60, clock=clock)
    with pytest.raises(ModelUnavailable):
        live.recommender()
    calls = []
    store.live_version = lambda: calls.append(1)

    with pytest.raises(ModelUnavailable, match="the model store did not answer"):
        live.recommender()
    assert calls == []  # within COLD_RETRY_SECONDS: no new wait on the store
    clock.now += LiveModel.COLD_RETRY_SECONDS
    with pytest.raises(ModelUnavailable):
        live.recommender()
    assert calls == [1]


# --- S3 unreachable -------------------------------------------------------------------------


def test_unreachable_s3_before_any_load_is_model_unavailable(settings, clock):
    store = ModelRegistry(unreachable_s3_client(), settings.model_bucket, settings.model_prefix)
    live = LiveModel(store, 0, clock=clock)

    with pytest.raises(ModelUnavailable, match=r"the model store did not answer \(EndpointConnectionError\)"):
        live.recommender()


def test_unreachable_s3_after_a_load_keeps_the_old_model(settings, proxy, store, make_tiny_artifact, clock):
    v1 = store.publish(make_tiny_artifact())
    live = LiveModel(store, 0, clock=clock)
    assert live.recommender().version == v1

    reachable, proxy.target = proxy.target, unreachable_s3_client()
    clock.now += 1
    assert live.recommender().version == v1
    live.wait_for_refresh()
    code, health = live.health(details=True)
    assert (code, health["status"], health["model_version"]) == (200, "degraded", v1)
    # The endpoint (and the bucket in its URL) is logged, never answered.
    assert health["last_refresh_error"] == "the model store did not answer (EndpointConnectionError)"

    live.wait_for_refresh()
    proxy.target = reachable
    v2 = store.publish(make_tiny_artifact())
    clock.now += 1
    live.recommender()
    live.wait_for_refresh()
    assert live.recommender().version == v2
    assert details(live)["last_refresh_error"] is None


# Regression: last_refresh_error went on reporting an S3 failure after S3 answered again.
def test_refresh_error_clears_once_s3_is_back(settings, proxy, store, make_tiny_artifact, clock):
    v1 = store.publish(make_tiny_artifact())
    live = LiveModel(store, 0, clock=clock)
    live.recommender()

    reachable, proxy.target = proxy.target, unreachable_s3_client()
    clock.now += 1
    live.recommender()
    live.wait_for_refresh()
    proxy.target = reachable
    clock.now += 1
    live.recommender()
    live.wait_for_refresh()

    health = details(live)
    assert health["model_version"] == v1
    assert health["last_refresh_error"] is None
