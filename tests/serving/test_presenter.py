"""present(): answers carry each item's catalog fields; items missing from the catalog keep their id only."""

from __future__ import annotations

import numpy as np

from chalicelib.catalog.item import CatalogItem, Price
from chalicelib.serving.presenter import present
from chalicelib.serving.recommender import Recommendations


class Described:
    def __init__(self, items):
        self._items = {item.item_id: item for item in items}

    def items(self, item_ids):
        return {item_id: self._items[item_id] for item_id in item_ids if item_id in self._items}


def test_items_are_described_from_the_catalog_and_unknown_ones_keep_their_id():
    answer = Recommendations("v1", "popular", np.array(["50", "unknown"]), np.array([5.0, 3.0]))
    catalog = Described([CatalogItem("50", "Star Wars (1977)", url="https://example.com/50",
                                     categories=("Sci-Fi",), price=Price(3.5, "USD"),
                                     attributes={"secret_note": "internal"})])

    body = present(answer, catalog, user_id="u1")

    assert list(body)[:2] == ["user_id", "model_version"]
    assert body["items"] == [
        {"item_id": "50", "score": 5.0, "title": "Star Wars (1977)", "url": "https://example.com/50",
         "categories": ["Sci-Fi"], "price": {"amount": 3.5, "currency": "USD"}, "available": True},
        {"item_id": "unknown", "score": 3.0},
    ]
