"""Answers as pages show them: each recommended item with its catalog fields.

An item the catalog does not hold (or cannot be read for) keeps its id and
score only: the answer never fails or shrinks for the catalog's sake.
"""

from __future__ import annotations

from typing import Any

from chalicelib.catalog.cache import CatalogCache
from chalicelib.serving.recommender import Recommendations

#: What an answer shows of a catalog item (the attributes and flags stay in the catalog).
SHOWN_FIELDS = ("title", "url", "image_url", "categories", "price", "available")


def present(answer: Recommendations, catalog: CatalogCache, **extra: Any) -> dict[str, Any]:
    """The JSON body of *answer* (with *extra* fields first), its items described from *catalog*."""
    body = {**extra, **answer.to_json()}
    if not body["items"]:
        return body
    described = catalog.items([entry["item_id"] for entry in body["items"]])
    for entry in body["items"]:
        item = described.get(entry["item_id"])
        if item is not None:
            shown = item.to_json()
            entry.update({name: shown[name] for name in SHOWN_FIELDS if name in shown})
    return body
