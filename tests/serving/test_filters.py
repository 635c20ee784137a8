"""ItemFilters: the business rules as a mask over the model's item rows, applied before the top-N cut.

The tiny model's items i0..i3 (see tests.support.tiny_artifact) against a hand-made catalog:
i0 is a comedy at 10 EUR, i1 an unavailable "Comédie" at 20 EUR, i2 is blocked, i3 is not in
the catalog at all; "x" is in the catalog but not in the model.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.catalog.index import CatalogIndexCache, fold_text, words_of
from chalicelib.catalog.item import CatalogItem, Price
from chalicelib.errors import CatalogUnavailable
from chalicelib.serving.filters import ItemFilter, ItemFilters
from chalicelib.serving.recommender import Recommender
from tests.support import FakeClock, tiny_artifact

TTL = 60.0

CATALOG = [
    CatalogItem("x", "Toy Soldiers", categories=("Comedy",), price=Price(1.0, "EUR")),  # not in the model
    CatalogItem("i2", "Heat", categories=("Crime",), price=Price(5.0, "EUR"), blocked=True),
    CatalogItem("i1", "Amélie", categories=("Comédie", "Romance"), price=Price(20.0, "EUR"), available=False),
    CatalogItem("i0", "Toy Story", categories=("Animation", "Comedy"), price=Price(10.0, "EUR")),
]


class Catalog:
    """``read_all`` of a catalog in memory, which can be made to fail."""

    def __init__(self, items: list[CatalogItem]) -> None:
        self.items = list(items)
        self.down = False

    def read_all(self) -> list[CatalogItem]:
        if self.down:
            raise CatalogUnavailable("catalog down")
        return list(self.items)


@pytest.fixture
def tiny() -> Recommender:
    return Recommender(tiny_artifact())


@pytest.fixture
def catalog() -> Catalog:
    return Catalog(CATALOG)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def index_cache(catalog, clock) -> CatalogIndexCache:
    return CatalogIndexCache(catalog.read_all, TTL, clock=clock)


@pytest.fixture
def filters(index_cache) -> ItemFilters:
    return ItemFilters(index_cache)


def allowed_ids(tiny: Recommender, mask: np.ndarray) -> list[str]:
    return tiny.item_ids_of(np.flatnonzero(mask))


# --- each rule ------------------------------------------------------------------------------------

def test_by_default_blocked_and_unavailable_items_are_out_and_unknown_ones_in(tiny, filters):
    mask = filters.allowed(tiny, ItemFilter())
    assert mask.dtype == bool and mask.shape == (4,)
    assert allowed_ids(tiny, mask) == ["i0", "i3"]


def test_unavailable_items_pass_when_not_asked_for_availability_but_blocked_ones_never(tiny, filters):
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter(available_only=False))) == ["i0", "i1", "i3"]


def test_blocked_mask_marks_the_blocked_items(tiny, filters):
    assert filters.blocked_mask(tiny).tolist() == [False, False, True, False]


@pytest.mark.parametrize(("categories", "expected"), [
    (("Comedy",), ["i0"]),  # "x" is a comedy too, but not the model's
    (("comedy",), ["i0"]),
    (("COMEDIE",), ["i1"]),
    (("comedy", "romance"), ["i0", "i1"]),
    (("crime",), []),  # blocked all the same
    (("western",), []),
])
def test_categories_keep_the_items_in_one_of_them_and_drop_those_missing_from_the_catalog(
        tiny, filters, categories, expected):
    mask = filters.allowed(tiny, ItemFilter(categories=categories, available_only=False))
    assert allowed_ids(tiny, mask) == expected


@pytest.mark.parametrize(("min_price", "max_price", "expected"), [
    (10.0, None, ["i0", "i1"]),  # bounds are inclusive
    (10.01, None, ["i1"]),
    (None, 10.0, ["i0"]),
    (None, 100.0, ["i0", "i1"]),  # i3 has no known price: never passes
    (10.0, 10.0, ["i0"]),
    (0.0, None, ["i0", "i1"]),  # blocked i2 (5 EUR) stays out
    (30.0, None, []),
])
def test_price_bounds_keep_known_prices_within_them(tiny, filters, min_price, max_price, expected):
    mask = filters.allowed(tiny, ItemFilter(min_price=min_price, max_price=max_price, available_only=False))
    assert allowed_ids(tiny, mask) == expected


def test_excluded_ids_are_out_and_unknown_ones_ignored(tiny, filters):
    mask = filters.allowed(tiny, ItemFilter(exclude=("i0", "ghost", "x"), available_only=False))
    assert allowed_ids(tiny, mask) == ["i1", "i3"]


@pytest.mark.parametrize(("query", "expected"), [
    ("toy", ["i0"]),
    ("Story TOY", ["i0"]),
    ("amelie", ["i1"]),
    ("rom", ["i1"]),  # categories are searched
    ("toy amelie", []),  # every word must match
    ("heat", []),  # blocked
    ("soldiers", []),  # only in the catalog
])
def test_a_query_keeps_the_items_matching_every_word(tiny, filters, query, expected):
    mask = filters.allowed(tiny, ItemFilter(query=query, available_only=False))
    assert allowed_ids(tiny, mask) == expected


def test_rules_combine(tiny, filters):
    item_filter = ItemFilter(categories=("comedy", "comédie"), query="toy", max_price=15.0, exclude=("i1",))
    assert allowed_ids(tiny, filters.allowed(tiny, item_filter)) == ["i0"]
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter(categories=("comedy",), exclude=("i0",)))) == []


def test_the_mask_applies_before_the_top_n_cut(tiny, filters):
    # u2=(1,1) scores i0=1, i1=1, i2=2, i3=2 and saw i0, i2: of the unseen, i1 is unavailable.
    answer = tiny.recommend(tiny.profile_for_user("u2"), 1, filters.allowed(tiny, ItemFilter()))
    assert answer.item_ids == ["i3"]
    popular = tiny.popular(2, allowed=filters.allowed(tiny, ItemFilter(available_only=False)))
    assert popular.item_ids == ["i0", "i3"]  # by popularity i0, i2, i3, i1; i2 is blocked


def test_a_shared_mask_cannot_be_written_by_one_request_for_the_next(tiny, filters):
    # The default filter's mask is shared across requests (no per-request copy): it is read-only.
    mask = filters.allowed(tiny, ItemFilter())
    with pytest.raises(ValueError, match="read-only"):
        mask[:] = True
    own = filters.allowed(tiny, ItemFilter(exclude=("i3",)))  # a filter of its own: a fresh, writable mask
    own[:] = True
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter())) == ["i0", "i3"]
    assert filters.blocked_mask(tiny).tolist() == [False, False, True, False]


def test_a_catalog_change_shows_in_the_mask_within_the_ttl(tiny, filters, index_cache, catalog, clock):
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter())) == ["i0", "i3"]
    catalog.items = [CatalogItem("i0", "Toy Story", blocked=True), CatalogItem("i3", "Alien", available=False)]
    clock.now += TTL / 2
    filters.allowed(tiny, ItemFilter())  # starts the rebuild, answers with the index it has
    index_cache.wait_for_rebuild(5)
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter())) == ["i1", "i2"]  # now missing: they pass


def test_each_model_reads_the_index_through_its_own_rows(tiny, filters):
    reordered = Recommender(tiny_artifact(item_ids=["i3", "i2", "i1", "i0"]))
    assert filters.allowed(reordered, ItemFilter()).tolist() == [True, False, False, True]
    assert filters.blocked_mask(reordered).tolist() == [False, True, False, False]
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter())) == ["i0", "i3"]  # and back


# --- when the catalog cannot be read ---------------------------------------------------------------

@pytest.fixture
def no_catalog(catalog) -> ItemFilters:
    catalog.down = True
    return ItemFilters(CatalogIndexCache(catalog.read_all, TTL, clock=FakeClock()))


def test_without_the_catalog_a_filter_that_can_do_without_it_gives_no_mask(tiny, no_catalog):
    assert no_catalog.allowed(tiny, ItemFilter()) is None
    assert no_catalog.allowed(tiny, ItemFilter(available_only=False)) is None
    assert no_catalog.blocked_mask(tiny) is None


def test_without_the_catalog_exclusions_still_apply(tiny, no_catalog):
    mask = no_catalog.allowed(tiny, ItemFilter(exclude=("i1", "ghost")))
    assert mask.tolist() == [True, False, True, True]


@pytest.mark.parametrize("item_filter", [
    ItemFilter(categories=("Comedy",)),
    ItemFilter(min_price=1.0),
    ItemFilter(max_price=1.0),
    ItemFilter(query="toy"),
], ids=["category", "min_price", "max_price", "query"])
def test_without_the_catalog_a_filter_that_needs_it_raises(tiny, no_catalog, item_filter):
    with pytest.raises(CatalogUnavailable):
        no_catalog.allowed(tiny, item_filter)


def test_a_stale_index_keeps_filtering_while_the_catalog_is_down(tiny, filters, catalog, clock):
    filters.allowed(tiny, ItemFilter())
    catalog.down = True
    clock.now += TTL
    assert allowed_ids(tiny, filters.allowed(tiny, ItemFilter(categories=("comedy",)))) == ["i0"]


# --- property: no answer holds an item a rule rules out, and N come back whenever N pass -----------

def _random_model() -> Recommender:
    """30 items of small integer factors (ties everywhere), popularity with ties, three users."""
    rng = np.random.default_rng(11)
    n_items = 30
    return Recommender(tiny_artifact(
        item_factors=rng.integers(-2, 3, size=(n_items, 3)).astype(np.float32),
        user_factors=rng.integers(-2, 3, size=(3, 3)).astype(np.float32),
        item_ids=[f"m{row}" for row in range(n_items)],
        item_popularity=rng.integers(0, 5, size=n_items).astype(np.float32),
        seen_indptr=np.array([0, 4, 4, 9]),
        seen_indices=np.array([0, 5, 7, 29, 1, 2, 3, 10, 20]),
    ))


MODEL = _random_model()
MODEL_IDS = MODEL.item_ids_of(np.arange(MODEL.n_items))
WORDS = ["Toy", "Story", "Amélie", "alien", "ALIENS", "heat", "Heart", "war", "Wars", "star"]
CATEGORIES = ["Comedy", "Comédie", "Drama", "Sci-Fi", "Horror"]

catalog_entries = st.builds(
    lambda words, categories, price, available, blocked: dict(
        title=" ".join(words), categories=tuple(categories),
        price=None if price is None else Price(price, "EUR"), available=available, blocked=blocked),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=3),
    st.lists(st.sampled_from(CATEGORIES), max_size=2, unique=True),
    st.one_of(st.none(), st.sampled_from([0.0, 4.99, 5.0, 10.0, 19.5, 20.0, 50.0])),
    st.sampled_from([True, True, True, False]),  # available
    st.sampled_from([False, False, False, True]),  # blocked
)


@st.composite
def catalogs(draw: st.DrawFn) -> list[CatalogItem]:
    """Catalog items for some of the model's items (the rest missing), a few foreign ones, in any order."""
    entries = draw(st.lists(st.one_of(st.none(), catalog_entries, catalog_entries), min_size=len(MODEL_IDS),
                            max_size=len(MODEL_IDS)))
    items = [CatalogItem(item_id, **entry) for item_id, entry in zip(MODEL_IDS, entries) if entry is not None]
    items += [CatalogItem(f"foreign{k}", **entry) for k, entry in enumerate(draw(st.lists(catalog_entries,
                                                                                          max_size=3)))]
    return draw(st.permutations(items))




def sometimes(strategy: st.SearchStrategy, otherwise: object = None) -> st.SearchStrategy:
    """*strategy* about one time in three, else *otherwise*: all rules at once mostly leave nothing to test."""
    return st.one_of(st.just(otherwise), st.just(otherwise), strategy)


item_filters = st.builds(
    ItemFilter,
    categories=sometimes(st.lists(st.sampled_from(["comedy", "COMEDIE", "drama", "sci-fi", "western"]),
                                  min_size=1, max_size=2).map(tuple), ()),
    exclude=st.lists(st.sampled_from([*MODEL_IDS, "ghost"]), max_size=6).map(tuple),
    available_only=st.booleans(),
    min_price=sometimes(st.sampled_from([0.0, 5.0, 10.0, 20.0])),
    max_price=sometimes(st.sampled_from([5.0, 10.0, 20.0, 60.0])),
    query=sometimes(st.lists(st.sampled_from(["to", "toy", "story", "ame", "amelie", "ali", "aliens", "hea", "war",
                                              "star", "zzz"]), min_size=1, max_size=2).map(" ".join)),
)

interactions = st.lists(st.tuples(st.sampled_from([*MODEL_IDS, "ghost"]), st.sampled_from([-1.0, 1.0, 2.0])),
                        max_size=5)
profiles = st.one_of(
    st.sampled_from(["u0", "u1", "u2", "nobody"]).map(MODEL.profile_for_user),
    st.tuples(st.sampled_from(["u0", "u2", "nobody"]), interactions).map(
        lambda args: MODEL.profile_for_user(args[0], [i for i, _ in args[1]], [v for _, v in args[1]])),
    st.lists(st.sampled_from([*MODEL_IDS, "ghost"]), max_size=5).map(MODEL.profile_for_session),
)


def passes(item: CatalogItem | None, item_id: str, item_filter: ItemFilter) -> bool:
    """The rules, item by item, as the docstrings state them."""
    if item_id in item_filter.exclude:
        return False
    if item is not None and (item.blocked or (item_filter.available_only and not item.available)):
        return False
    if item_filter.categories:
        wanted = {fold_text(category) for category in item_filter.categories}
        if item is None or not any(fold_text(category) in wanted for category in item.categories):
            return False
    price = item.price.amount if item is not None and item.price is not None else None
    if item_filter.min_price is not None and (price is None or price < item_filter.min_price):
        return False
    if item_filter.max_price is not None and (price is None or price > item_filter.max_price):
        return False
    if item_filter.query:
        if item is None:
            return False
        words = words_of(" ".join([item.title, *item.categories]))
        if not all(any(word.startswith(part) for word in words) for part in words_of(item_filter.query)):
            return False
    return True


def check_answer(answer, passing: np.ndarray, excluded_rows, n: int) -> None:
    rows = [MODEL.item_row(item_id) for item_id in answer.item_ids]
    excluded = set(np.asarray(excluded_rows, dtype=np.int64).tolist())
    assert len(set(rows)) == len(rows)
    assert all(passing[row] and row not in excluded for row in rows), answer.item_ids
    candidates = sum(1 for row in np.flatnonzero(passing) if row not in excluded)
    assert len(rows) == min(n, candidates)
    assert answer.scores == sorted(answer.scores, reverse=True)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(catalogs(), item_filters, profiles, st.sampled_from(MODEL_IDS), st.integers(min_value=1, max_value=35))
def test_answers_never_hold_an_item_the_rules_rule_out_and_n_come_back_whenever_n_pass(
        items, item_filter, profile, similar_to, n):
    filters = ItemFilters(CatalogIndexCache(lambda: items, TTL, clock=FakeClock()))
    by_id = {item.item_id: item for item in items}
    passing = np.array([passes(by_id.get(item_id), item_id, item_filter) for item_id in MODEL_IDS])

    allowed = filters.allowed(MODEL, item_filter)

    assert allowed.tolist() == passing.tolist()
    check_answer(MODEL.recommend(profile, n, allowed), passing, profile.exclude, n)
    check_answer(MODEL.popular(n, exclude=profile.exclude, allowed=allowed), passing, profile.exclude, n)
    check_answer(MODEL.similar_items(similar_to, n, allowed), passing, [MODEL.item_row(similar_to)], n)
