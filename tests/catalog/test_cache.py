"""CatalogCache: one batch read per answer at most, a bounded TTL and size, stale items when DynamoDB fails."""

from __future__ import annotations

from chalicelib.catalog.cache import CatalogCache
from chalicelib.catalog.item import CatalogItem
from chalicelib.errors import CatalogUnavailable
from tests.support import FakeClock


class CountingCatalog:
    """A catalog in memory that counts reads (the cache's own logic under test, not DynamoDB's)."""

    def __init__(self, items):
        self.items = {item.item_id: item for item in items}
        self.reads: list[list[str]] = []
        self.down = False

    def get_many(self, item_ids):
        if self.down:
            raise CatalogUnavailable("down")
        self.reads.append(list(item_ids))
        return {item_id: self.items[item_id] for item_id in item_ids if item_id in self.items}


def test_items_are_read_once_per_ttl_and_absent_ids_are_remembered_too():
    catalog, clock = CountingCatalog([CatalogItem("a", "A"), CatalogItem("b", "B")]), FakeClock()
    cache = CatalogCache(catalog, ttl_seconds=60, max_items=100, clock=clock)

    assert set(cache.items(["a", "b", "zz"])) == {"a", "b"}
    assert set(cache.items(["a", "zz"])) == {"a"}
    assert catalog.reads == [["a", "b", "zz"]]

    catalog.items["a"] = CatalogItem("a", "A, edited")
    clock.now += 60
    assert cache.items(["a"])["a"].title == "A, edited"  # within the TTL an edit shows
    assert catalog.reads[-1] == ["a"]


def test_the_cache_keeps_at_most_max_items():
    catalog = CountingCatalog([CatalogItem(str(n), f"item {n}") for n in range(10)])
    cache = CatalogCache(catalog, ttl_seconds=60, max_items=3, clock=FakeClock())
    cache.items([str(n) for n in range(10)])
    assert len(cache._entries) == 3
    cache.items(["9"])
    assert len(catalog.reads) == 1  # the newest stayed
    cache.items(["0"])
    assert catalog.reads[-1] == ["0"]  # the oldest went


def test_when_the_catalog_fails_stale_items_answer_and_the_rest_go_without():
    catalog, clock = CountingCatalog([CatalogItem("a", "A")]), FakeClock()
    cache = CatalogCache(catalog, ttl_seconds=10, max_items=100, clock=clock)
    cache.items(["a"])
    clock.now += 11
    catalog.down = True

    assert cache.items(["a", "b"]) == {"a": CatalogItem("a", "A")}


def test_after_a_failed_read_answers_skip_the_catalog_for_a_few_seconds():
    catalog, clock = CountingCatalog([CatalogItem("a", "A")]), FakeClock()
    cache = CatalogCache(catalog, ttl_seconds=60, max_items=100, clock=clock)
    catalog.down = True
    assert cache.items(["a"]) == {}
    catalog.down = False

    assert cache.items(["a"]) == {} and catalog.reads == []  # not asked again at once
    clock.now += CatalogCache.PAUSE_AFTER_FAILURE_SECONDS
    assert cache.items(["a"]) == {"a": CatalogItem("a", "A")}


def test_forgotten_items_are_read_again_by_the_next_answer():
    catalog, clock = CountingCatalog([CatalogItem("a", "A"), CatalogItem("b", "B")]), FakeClock()
    cache = CatalogCache(catalog, ttl_seconds=60, max_items=100, clock=clock)
    cache.items(["a", "b"])
    catalog.items["a"] = CatalogItem("a", "A", blocked=True)

    cache.forget(["a"])

    assert cache.items(["a", "b"])["a"].blocked
    assert catalog.reads[-1] == ["a"]
