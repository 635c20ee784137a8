"""The catalog table on both DynamoDB emulators: upserts replace whole items, reads give them back equal."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chalicelib.catalog.item import CatalogItem, Price
from chalicelib.errors import CatalogUnavailable
from chalicelib.resources import Resources
from tests.support import closed_port_url

STAR_WARS = CatalogItem("50", "Star Wars (1977)", url="https://example.com/50", categories=("Sci-Fi", "War"),
                        price=Price(3.99, "USD"), attributes={"year": 1977.0, "director": "Lucas", "colour": True})


@pytest.fixture
def catalog(dynamodb_resources):
    return dynamodb_resources.catalog


def test_an_item_is_stored_whole_and_read_back_equal(catalog):
    [stored] = catalog.put([STAR_WARS])

    assert stored.updated_at is not None
    assert catalog.get("50") == stored
    assert replace(stored, updated_at=None) == STAR_WARS


def test_an_upsert_replaces_the_whole_item(catalog):
    catalog.put([STAR_WARS])
    catalog.put([CatalogItem("50", "Star Wars: Episode IV", available=False)])

    again = catalog.get("50")
    assert (again.title, again.available, again.categories, again.price, again.attributes) == (
        "Star Wars: Episode IV", False, (), None, {})


def test_batches_beyond_one_dynamodb_call_are_stored_and_read_back_by_id(catalog):
    items = [CatalogItem(str(n), f"Item {n}", categories=("c",)) for n in range(60)]
    catalog.put(items)

    found = catalog.get_many([str(n) for n in range(0, 70, 7)] + ["0"])
    assert sorted(found, key=int) == [str(n) for n in range(0, 60, 7)]
    assert found["7"].title == "Item 7"
    assert catalog.get("missing") is None


def test_an_unreachable_catalog_is_catalog_unavailable_without_internals(settings):
    dead = Resources(replace(settings, dynamodb_endpoint_url=closed_port_url())).catalog
    for call in (lambda: dead.get("50"), lambda: dead.put([STAR_WARS]), lambda: dead.get_many(["50"])):
        with pytest.raises(CatalogUnavailable) as unavailable:
            call()
        assert "127.0.0.1" not in str(unavailable.value) and settings.events_table not in str(unavailable.value)


def test_a_put_tells_the_listeners_which_items_it_stored(catalog):
    told: list[list[str]] = []
    catalog.on_change(told.append)

    catalog.put([CatalogItem("a", "A"), CatalogItem("b", "B")])

    assert told == [["a", "b"]]


def test_all_items_reads_the_fields_filters_use(catalog):
    catalog.put([CatalogItem("a", "A", url="https://example.com/a", categories=("X",), price=Price(2.5, "EUR"),
                             available=False, blocked=True, attributes={"year": 1999})])

    [item] = catalog.all_items()

    assert (item.item_id, item.title, item.categories, item.price, item.available, item.blocked, item.attributes) \
        == ("a", "A", ("X",), Price(2.5, "EUR"), False, True, {"year": 1999})
    assert item.url is None  # not read: filters do not use it


def test_all_items_follows_the_scan_page_by_page(catalog, monkeypatch):
    monkeypatch.setattr(type(catalog), "SCAN_PAGE_ITEMS", 2)
    catalog.put([CatalogItem(str(number), f"Item {number}") for number in range(5)])

    assert sorted(item.item_id for item in catalog.all_items()) == ["0", "1", "2", "3", "4"]
