"""The weekly report's source over the real counters: events written through the event log (which keeps
the counters at ingest), then read back as the report's rows."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.catalog.rules import check_catalog_item
from chalicelib.errors import InvalidRequest
from chalicelib.eventlog.item import Event
from scripts.insights_report import build_source
from tests.conftest import with_counters


@pytest.fixture(name="settings")
def counting_settings(settings):
    """The test's settings, counting at ingest (the suite's default is off)."""
    return with_counters(settings)


NOW = datetime.now(timezone.utc)


def events(item, kinds, at, tag):
    return [Event(f"{tag}-u{k}", item, kind, f"{tag}-{item}-{k}", at) for k, kind in enumerate(kinds)]


@pytest.fixture
def source(resources):
    resources.catalog.put([check_catalog_item({"title": f"Movie {name}", "categories": [category]}, item_id=name)
                           for name, category in (("a", "Comedy"), ("b", "Drama"), ("c", "Drama"))])
    recent, before = NOW - timedelta(minutes=1), NOW - timedelta(days=8)  # this 7d window, and the one before
    written = (events("a", ["view"] * 3 + ["click", "purchase"], recent, "now")
               + events("b", ["view"], recent, "now") + events("c", ["view", "view"], recent, "now")
               + events("a", ["view"], before, "old") + events("b", ["view"] * 4, before, "old"))
    assert len(resources.event_log.write(written).stored) == len(written)
    return build_source(resources)


def test_items_by_views_and_by_change_of_views_lowest_first(source):
    top = source.items("7d", "views", 2)
    assert [(row.key, row.title, row.views, row.clicks, row.purchases, row.distinct_users) for row in top] == [
        ("a", "Movie a", 3, 1, 1, 5), ("c", "Movie c", 2, 0, 0, 2)]
    assert (top[0].click_through_rate, top[0].conversion_rate) == (0.3333, 0.3333)
    # a: 3 views against 1 is +200 % (its events went from 1 to 5, +400 %); b: 1 against 4; c: new.
    falling = source.items("7d", "change", 10)
    assert [(row.key, row.previous_views, row.change) for row in falling] == [
        ("b", 4, -0.75), ("a", 1, 2.0), ("c", 0, None)]


def test_categories_by_conversion_and_trending_with_its_rates(source):
    categories = source.categories("7d", "conversion_rate", 5)
    assert [(row.key, row.title, row.views, row.purchases, row.conversion_rate) for row in categories] == [
        ("Comedy", None, 3, 1, 0.3333), ("Drama", None, 3, 0, 0.0)]
    [row] = source.trending(5)  # only a has the 5 events in 24 hours a trend needs
    assert (row.item_id, row.title, row.categories) == ("a", "Movie a", ("Comedy",))
    # Its old view is in the baseline (the 14 days before yesterday): 1 a day over 14.
    assert row.recent > 0 and row.baseline == round(1 / 14, 2) and row.score > 1


def test_only_windows_and_orders_the_counters_keep(source):
    with pytest.raises(InvalidRequest, match="1h, 24h, 7d, 28d"):
        source.items("30d", "views", 3)
    with pytest.raises(InvalidRequest, match="by conversion_rate"):
        source.categories("7d", "views", 3)
