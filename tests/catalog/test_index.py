"""CatalogIndex: folded categories and word-prefix search; CatalogIndexCache: its TTL, background rebuilds and failures."""

from __future__ import annotations

import threading

import pytest

from chalicelib.catalog.index import CatalogIndex, CatalogIndexCache, fold_text, words_of
from chalicelib.catalog.item import CatalogItem, Price
from chalicelib.errors import CatalogUnavailable
from tests.support import FakeClock

# --- fold_text / words_of -----------------------------------------------------------------------


@pytest.mark.parametrize(("text", "folded"), [
    ("Amélie", "amelie"),
    ("AMÉLIE", "amelie"),
    ("Ame\u0301lie", "amelie"),  # already decomposed: the same
    ("Straße", "strasse"),  # casefold, not lower
    ("ﬁlm", "film"),  # compatibility ligature
    ("Ça va", "ca va"),
    ("", ""),
])
def test_fold_text_removes_accents_and_folds_case(text, folded):
    assert fold_text(text) == folded


def test_words_of_are_folded_runs_of_letters_and_digits():
    assert words_of("Toy Story 2 (1999)") == ["toy", "story", "2", "1999"]
    assert words_of("Sci-Fi & Fantasy_Films") == ["sci", "fi", "fantasy", "films"]  # "_" separates too
    assert words_of("Amélie, Poulain!") == ["amelie", "poulain"]
    assert words_of(" -- ") == []


# --- CatalogIndex -------------------------------------------------------------------------------

ITEMS = [
    CatalogItem("m0", "Toy Story", categories=("Animation", "Comedy"), price=Price(10.0, "EUR")),
    CatalogItem("m1", "Amélie", categories=("Comédie", "Romance"), available=False),
    CatalogItem("m2", "Story of a Toy Maker", categories=("Drama",), blocked=True,
                attributes={"director": "Jane Doe", "year": 1999, "tags": ["cozy", 7, "Winter"],
                            "nested": {"hidden": "word"}}),
    CatalogItem("m3", "Alien", categories=("Sci-Fi", "Horror"), price=Price(7.5, "EUR")),
]


@pytest.fixture
def index() -> CatalogIndex:
    return CatalogIndex(ITEMS)


def test_index_holds_flags_and_prices_by_catalog_row(index):
    assert len(index) == 4
    assert index.item_ids == ["m0", "m1", "m2", "m3"]
    assert index.available.tolist() == [True, False, True, True]
    assert index.blocked.tolist() == [False, False, True, False]
    assert index.prices[[0, 3]].tolist() == [10.0, 7.5]
    assert all(index.prices[[1, 2]] != index.prices[[1, 2]])  # no price: NaN


def test_an_empty_catalog_gives_an_empty_index():
    empty = CatalogIndex([])
    assert len(empty) == 0
    assert empty.rows_in_categories(["Comedy"]).tolist() == []
    assert empty.rows_matching("toy").tolist() == []


@pytest.mark.parametrize(("categories", "rows"), [
    (["Comedy"], [0]),
    (["comedy"], [0]),
    (["COMÉDIE"], [1]),  # "Comédie" and "Comedy" are different words, accents aside
    (["comedie"], [1]),
    (["sci-fi"], [3]),
    (["Comedy", "Drama"], [0, 2]),
    (["Comedy", "Animation"], [0]),  # once, although in both
    (["Western"], []),
    ([], []),
    (["Com"], []),  # categories match whole, not by prefix
])
def test_categories_compare_without_case_or_accents(index, categories, rows):
    assert index.rows_in_categories(categories).tolist() == rows


@pytest.mark.parametrize(("query", "rows"), [
    ("toy", [0, 2]),
    ("Toy Story", [0, 2]),
    ("to st", [0, 2]),  # every word by prefix
    ("toy maker", [2]),  # every word must match
    ("toy alien", []),
    ("story toy toy", [0, 2]),  # order and repeats do not matter
    ("amelie", [1]),  # accents and case ignored, both ways
    ("AMÉL", [1]),
    ("Ame\u0301lie", [1]),
    ("romance", [1]),  # categories are searched
    ("comedie", [1]),
    ("sci", [3]),
    ("jane", [2]),  # string attributes are searched
    ("winter cozy", [2]),  # and strings in list attributes
    ("1999", []),  # numbers in attributes are not
    ("word", []),  # nor nested objects
    ("oy", []),  # a prefix of a word, not any substring
    ("toys", []),
    ("xyz", []),
])
def test_query_matches_items_by_word_prefix_over_title_categories_and_attributes(index, query, rows):
    assert index.rows_matching(query).tolist() == rows


def test_a_query_without_any_word_matches_nothing(index):
    assert index.rows_matching("").tolist() == []
    assert index.rows_matching(" ?! ").tolist() == []


# --- CatalogIndexCache --------------------------------------------------------------------------

TTL = 60.0


class ScriptedCatalog:
    """``read_all`` under the test's control: counts its calls, fails on demand, can be held mid-read."""

    def __init__(self, items: list[CatalogItem]) -> None:
        self.items = list(items)
        self.calls = 0
        self.down = False
        self.hold: threading.Event | None = None

    def read_all(self) -> list[CatalogItem]:
        self.calls += 1
        if self.hold is not None:
            self.hold.wait(5)
        if self.down:
            raise CatalogUnavailable("catalog down")
        return list(self.items)


@pytest.fixture
def catalog() -> ScriptedCatalog:
    return ScriptedCatalog([CatalogItem("a", "A")])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def cache(catalog, clock) -> CatalogIndexCache:
    return CatalogIndexCache(catalog.read_all, TTL, clock=clock)


def test_the_first_call_builds_the_index_and_later_ones_reuse_it(cache, catalog, clock):
    first = cache.current()
    assert first is not None and first.item_ids == ["a"]
    clock.now += TTL / 2 - 0.1
    assert cache.current() is first
    cache.wait_for_rebuild()
    assert catalog.calls == 1


def test_an_index_older_than_the_ttl_is_answered_with_while_it_is_rebuilt(cache, catalog, clock):
    first = cache.current()
    catalog.items.append(CatalogItem("b", "B", blocked=True))
    clock.now += TTL

    assert cache.current() is first  # no request waits on a warm instance's rebuild
    cache.wait_for_rebuild(5)

    assert catalog.calls == 2
    assert cache.current().item_ids == ["a", "b"]


def test_an_index_older_than_half_the_ttl_is_rebuilt_in_the_background(cache, catalog, clock):
    first = cache.current()
    catalog.items.append(CatalogItem("b", "B"))
    clock.now += TTL / 2

    assert cache.current() is first  # this request goes on with the current index
    cache.wait_for_rebuild(timeout=5)

    assert catalog.calls == 2
    second = cache.current()
    assert second is not first and second.item_ids == ["a", "b"]
    cache.wait_for_rebuild(timeout=5)
    assert catalog.calls == 2  # fresh again: no further rebuild


def test_one_background_rebuild_at_a_time(cache, catalog, clock):
    first = cache.current()
    catalog.hold = threading.Event()
    clock.now += TTL / 2
    try:
        assert cache.current() is first
        assert cache.current() is first  # the rebuild still runs: no second one
    finally:
        catalog.hold.set()
        cache.wait_for_rebuild(timeout=5)
    assert catalog.calls == 2


def test_when_the_catalog_fails_the_last_index_is_kept(cache, catalog, clock):
    first = cache.current()
    catalog.down = True
    clock.now += TTL

    assert cache.current() is first
    cache.wait_for_rebuild(timeout=5)
    assert catalog.calls == 2
    assert cache.current() is first


def test_a_change_through_this_instance_makes_the_next_request_wait_for_the_new_index(cache, catalog, clock):
    first = cache.current()
    catalog.items.append(CatalogItem("b", "B", blocked=True))

    cache.changed(["b"])

    assert cache.current() is not first and cache.current().item_ids == ["a", "b"]
    assert catalog.calls == 2


def test_a_failed_background_rebuild_keeps_the_last_index(cache, catalog, clock):
    first = cache.current()
    catalog.down = True
    clock.now += TTL / 2
    assert cache.current() is first
    cache.wait_for_rebuild(timeout=5)
    assert catalog.calls == 2
    assert cache.current() is first


def test_no_index_at_all_when_the_catalog_was_never_readable(cache, catalog):
    catalog.down = True
    assert cache.current() is None
    assert catalog.calls == 1


def test_after_a_failure_with_no_index_the_catalog_is_left_alone_for_a_pause(cache, catalog, clock):
    catalog.down = True
    assert cache.current() is None
    catalog.down = False

    clock.now += CatalogIndexCache.PAUSE_AFTER_FAILURE_SECONDS - 0.1
    assert cache.current() is None  # not asked again yet
    assert catalog.calls == 1

    clock.now += 0.1
    assert cache.current().item_ids == ["a"]
    assert catalog.calls == 2


# Regression: the pause gated only the synchronous rebuild; a background one scanned a down catalog at once.
def test_after_a_failure_with_a_stale_index_the_catalog_is_left_alone_for_a_pause(cache, catalog, clock):
    first = cache.current()
    catalog.down = True
    clock.now += TTL
    assert cache.current() is first  # answered with while the rebuild (which fails) runs
    cache.wait_for_rebuild(timeout=5)
    assert catalog.calls == 2

    clock.now += 1.0  # well within the pause
    assert cache.current() is first
    cache.wait_for_rebuild(timeout=5)
    assert catalog.calls == 2  # not asked again within the pause, neither in the foreground nor in the background


def test_the_catalog_is_read_again_after_the_pause_and_the_new_index_replaces_the_stale_one(cache, catalog, clock):
    first = cache.current()
    catalog.down = True
    clock.now += TTL
    assert cache.current() is first
    catalog.down = False
    catalog.items = [CatalogItem("c", "C")]

    clock.now += CatalogIndexCache.PAUSE_AFTER_FAILURE_SECONDS
    catalog.hold = threading.Event()  # the read in progress, whatever the scheduler does meanwhile
    try:
        assert cache.current() is first  # still answering while the catalog is read again
    finally:
        catalog.hold.set()

    cache.wait_for_rebuild(timeout=5)
    assert cache.current().item_ids == ["c"]


def test_wait_for_rebuild_returns_at_once_without_a_rebuild(cache):
    cache.wait_for_rebuild(timeout=0.1)
