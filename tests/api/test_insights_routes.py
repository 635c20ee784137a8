"""Content performance and trending through the app: answers, pagination, bad input, keys; trending
needs volume and reacts to a burst (fixed clock: ``now`` passed explicitly).

The stage, catalog, model and events are set up once for the module (the tests only read them, and
the burst's events are in June 2026, in buckets no other test reads).
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.catalog.rules import check_catalog_item
from chalicelib.eventlog.item import Event
from chalicelib.insights.trending import Trending
from chalicelib.resources import Resources
from tests.conftest import with_counters
from tests.support import JSON_HEADERS, as_visitor, client_for, tiny_artifact

NOW = datetime.now(timezone.utc)
#: One worker runs the module (make test distributes by group), so its set-up is done once.
pytestmark = pytest.mark.xdist_group("insights-routes")


@pytest.fixture(scope="module")
def stage(module_settings, dynalite_server):
    """The module's settings, on dynalite where it runs: a listing is dozens of Queries, each far quicker there."""
    if dynalite_server is None:
        return with_counters(module_settings)
    return with_counters(replace(module_settings, dynamodb_endpoint_url=dynalite_server.url))


@pytest.fixture(scope="module")
def resources(stage):
    """The module's stores: a tiny model and four items, i1 and i3 in Comedy, i0 and i2 in Drama."""
    shared = Resources(stage)
    shared.model_registry.publish(tiny_artifact())
    shared.catalog.put([check_catalog_item({"title": f"Item {n}", "categories": ["Comedy" if n % 2 else "Drama"]},
                                           item_id=f"i{n}") for n in range(4)])
    return shared


@pytest.fixture(scope="module")
def client(stage, resources, tmp_path_factory):
    """The app, after i1 got 3 views, a click and a purchase on the web, i2 a view in the app (through
    ``POST /events``), and i3 6 views (straight into the counters)."""
    with client_for(stage, tmp_path_factory.mktemp("stage")) as client:
        events = [{"user_id": f"u{k}", "item_id": "i1", "event_type": kind, "source": "web"}
                  for k, kind in enumerate(["view", "view", "view", "click", "purchase"])]
        events += [{"user_id": "u9", "item_id": "i2", "event_type": "view", "source": "app"}]
        assert client.http.post("/events", body=json.dumps({"events": events}), headers=JSON_HEADERS).status_code == 202
        resources.insights.counters.record([Event(f"v{k}", "i3", "view", f"t{k}", NOW) for k in range(6)])
        yield client


def get(client, path, headers=None):
    response = client.http.get(path, headers=headers or {})
    return response.status_code, json.loads(response.body)


def test_items_show_counts_rates_and_distinct_users_and_page_with_a_cursor(client):
    # 7d: the events are in its newest bucket too, and it is 14 Queries where 24h is 48.
    status, answer = get(client, "/insights/items?window=7d&limit=2")
    assert status == 200 and answer["total"] == 3
    assert [row["item_id"] for row in answer["items"]] == ["i3", "i1"]  # by views: 6, 3
    row = answer["items"][1]
    assert (row["item_id"], row["title"], row["views"], row["clicks"], row["purchases"], row["events"]) == (
        "i1", "Item 1", 3, 1, 1, 5)
    assert (row["distinct_users"], row["click_through_rate"], row["conversion_rate"]) == (5, 0.3333, 0.3333)
    assert row["previous"]["events"] == 0 and row["change"] is None
    status, second = get(client, f"/insights/items?window=7d&limit=2&cursor={answer['next_cursor']}")
    assert [row["item_id"] for row in second["items"]] == ["i2"] and second["next_cursor"] is None
    assert [r["item_id"] for r in get(client, "/insights/items?source=app")[1]["items"]] == ["i2"]
    assert [r["item_id"] for r in get(client, "/insights/items?category=comedy")[1]["items"]] == ["i3", "i1"]


def test_categories_add_up_their_items(client):
    status, answer = get(client, "/insights/categories?window=1h&sort=events&order=asc")
    assert status == 200
    assert [(row["category"], row["events"]) for row in answer["categories"]] == [("Drama", 1), ("Comedy", 11)]


@pytest.mark.parametrize(("path", "field"), [
    ("/insights/items?window=2h", "window"), ("/insights/items?source=fax", "source"),
    ("/insights/items?sort=price", "sort"), ("/insights/items?order=up", "order"),
    ("/insights/items?limit=0", "limit"), ("/insights/items?limit=101", "limit"),
    ("/insights/items?cursor=bm9wZQ", "cursor"), ("/insights/items?source=web&sort=distinct_users", "sort"),
    ("/insights/items?n=3", "n"), ("/insights/categories?category=Comedy", "category"),
    ("/trending?n=0", "n"), ("/trending?category=", "category"), ("/trending?window=1h", "window"),
])
def test_bad_input_is_refused_saying_what_is_wrong(client, path, field):
    status, body = get(client, path)
    assert (status, body["error"], body["field"]) == (400, "invalid_request", field) and body["message"]


def test_a_cursor_of_another_listing_is_refused(client):
    cursor = get(client, "/insights/items?window=7d&limit=1")[1]["next_cursor"]
    assert get(client, f"/insights/items?window=24h&limit=1&cursor={cursor}")[1]["field"] == "cursor"


@pytest.mark.parametrize("path", ["/insights/items", "/insights/categories"])
def test_content_performance_is_for_secret_keys_only(client, path):
    assert get(client, path, {"x-api-key": None})[0] == 401
    assert get(client, path, {"x-api-key": "sk_wrong"})[1]["error"] == "invalid_api_key"
    for headers in (as_visitor(), as_visitor("u0")):
        assert get(client, path, headers)[1]["error"] == "key_not_allowed"


def test_trending_is_for_any_key(client):
    assert get(client, "/trending", {"x-api-key": None})[0] == 401
    status, answer = get(client, "/trending?n=3&category=Comedy", as_visitor())
    assert status == 200 and answer["strategy"] == "trending"


def _trend(resources, now, events):
    writer = resources.insights.counters
    real_clock, writer._clock = writer._clock, lambda: now  # June 2026 is past the horizon of the real clock
    try:
        writer.record(events)
    finally:
        writer._clock = real_clock
    return Trending(resources.insights.counter_reader, resources.catalog_cache, resources.settings.event_weight_map,
                    6.0, 5, clock=lambda: now)


def test_trending_needs_volume_and_reacts_to_a_burst_within_the_hour(resources):
    now = datetime(2026, 6, 15, 12, 30, tzinfo=timezone.utc)

    def views(item, count, at, tag):
        return [Event(f"{tag}{k}", item, "view", f"{tag}{item}{k}", at) for k in range(count)]

    # steady: 20 views a day for two weeks; burst: 2 a day, then 30 in the last hour; lone: one click now
    history = [e for day in range(2, 16) for e in views("steady", 20, now - timedelta(days=day), f"s{day}-")
               + views("burst", 2, now - timedelta(days=day), f"b{day}-")]
    recent = views("steady", 20, now - timedelta(hours=3), "s0-") + views("burst", 30, now, "b0-") + [
        Event("x", "lone", "click", "lone-1", now)]
    trending = _trend(resources, now, history + recent)

    ids, scores = trending.scores(now)
    ranked = trending.top(10, now=now)
    assert ranked.item_ids[0] == "burst" and "lone" not in ranked.item_ids  # one click is no trend
    assert scores[ids.index("burst")] > 3 * scores[ids.index("steady")]
    before = _trend(resources, now - timedelta(hours=1), [])  # an hour earlier the burst had not happened
    assert "burst" not in before.top(10, now=now - timedelta(hours=1)).item_ids


def test_a_chat_asking_what_is_trending_gets_the_trend(client):
    body = json.dumps({"query": "what's trending now?", "category": "Comedy", "n": 2})
    answer = json.loads(client.http.post("/chat/suggestions", body=body, headers=JSON_HEADERS).body)
    assert answer["strategy"] == "trending" and answer["message"].startswith("Trending in Comedy today:")
    assert {item["item_id"] for item in answer["items"]} <= {"i1", "i3"}  # the Comedy items with 5 events or more
