"""What a catalog item may hold: every field's rule, and batches refused whole."""

from __future__ import annotations

import pytest

from chalicelib.catalog.item import Price
from chalicelib.catalog.rules import MAX_ITEMS_PER_REQUEST, check_catalog_batch, check_catalog_item
from chalicelib.errors import InvalidRequest, PayloadTooLarge


def item(**fields):
    return {"item_id": "50", "title": "Star Wars (1977)", **fields}


def test_a_full_item_is_kept_with_its_title_in_nfc_and_repeated_categories_once():
    checked = check_catalog_item(item(
        title="Ame\u0301lie (2001)", url="https://example.com/amelie", image_url="http://img.example/a.jpg",
        categories=["Comedy", "Romance", "Comedy"], price={"amount": 9.5, "currency": "EUR"},
        available=False, attributes={"year": 2001, "director": "Jeunet", "restored": True}))

    assert checked.title == "Amélie (2001)"
    assert checked.categories == ("Comedy", "Romance")
    assert checked.price == Price(9.5, "EUR")
    assert (checked.available, checked.blocked) == (False, False)
    assert checked.attributes == {"year": 2001, "director": "Jeunet", "restored": True}
    assert isinstance(checked.attributes["year"], int)


def test_defaults_are_available_not_blocked_no_categories_no_attributes():
    checked = check_catalog_item(item())
    assert (checked.available, checked.blocked, checked.categories, checked.attributes, checked.price) == (
        True, False, (), {}, None)


@pytest.mark.parametrize(("fields", "field"), [
    ({"title": None}, "item.title"),
    ({"title": " padded"}, "item.title"),
    ({"title": "x" * 301}, "item.title"),
    ({"title": "a\u202eb"}, "item.title"),
    ({"url": "ftp://example.com/x"}, "item.url"),
    ({"url": "/relative"}, "item.url"),
    ({"image_url": "https://exa mple.com"}, "item.image_url"),
    ({"categories": "Comedy"}, "item.categories"),
    ({"categories": ["ok", ""]}, "item.categories[1]"),
    ({"categories": [f"c{n}" for n in range(21)]}, "item.categories"),
    ({"price": 9.5}, "item.price"),
    ({"price": {"amount": -1, "currency": "EUR"}}, "item.price.amount"),
    ({"price": {"amount": 1e-200, "currency": "EUR"}}, "item.price.amount"),
    ({"price": {"amount": 5, "currency": "eur"}}, "item.price.currency"),
    ({"available": "yes"}, "item.available"),
    ({"blocked": 1}, "item.blocked"),
    ({"attributes": {"1bad": "x"}}, "item.attributes"),
    ({"attributes": {"nested": {"a": 1}}}, "item.attributes.nested"),
    ({"attributes": {f"a{n}": n for n in range(21)}}, "item.attributes"),
    ({"colour": "red"}, "item.colour"),
    ({"item_id": "u0 "}, "item.item_id"),
])
def test_each_rule_refuses_naming_the_field(fields, field):
    with pytest.raises(InvalidRequest) as refused:
        check_catalog_item(item(**fields))
    assert refused.value.field == field


def test_a_put_body_may_repeat_its_path_id_but_not_name_another():
    assert check_catalog_item({"title": "t"}, item_id="50").item_id == "50"
    assert check_catalog_item({"item_id": "50", "title": "t"}, item_id="50").item_id == "50"
    with pytest.raises(InvalidRequest, match="another item"):
        check_catalog_item({"item_id": "51", "title": "t"}, item_id="50")


def test_a_batch_is_refused_whole_for_one_bad_item_a_repeated_id_or_too_many_items():
    good = [item(item_id=str(n)) for n in range(3)]
    assert [i.item_id for i in check_catalog_batch({"items": good})] == ["0", "1", "2"]
    with pytest.raises(InvalidRequest) as refused:
        check_catalog_batch({"items": [*good, item(item_id="3", title="")]})
    assert refused.value.field == "items[3].title"
    with pytest.raises(InvalidRequest, match="repeats"):
        check_catalog_batch({"items": [*good, item(item_id="1")]})
    with pytest.raises(PayloadTooLarge):
        check_catalog_batch({"items": [item(item_id=str(n)) for n in range(MAX_ITEMS_PER_REQUEST + 1)]})
    for body in ({}, {"items": []}, {"items": "x"}, {"items": good, "more": 1}):
        with pytest.raises(InvalidRequest):
            check_catalog_batch(body)
