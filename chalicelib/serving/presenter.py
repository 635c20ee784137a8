"""Answers as pages show them: each recommended item with its catalog fields, and its reason if asked.

An item the catalog does not hold (or cannot be read for) keeps its id and
score only: the answer never fails or shrinks for the catalog's sake. One
exception: an item the answer's own catalog read finds blocked is dropped,
so brand safety never waits for the filter index to catch up.
"""

from __future__ import annotations

from typing import Any

from chalicelib.catalog.cache import CatalogCache
from chalicelib.serving.explain import ExplainContext, Explainer
from chalicelib.serving.recommender import Recommendations

#: What an answer shows of a catalog item (the attributes and flags stay in the catalog).
SHOWN_FIELDS = ("title", "url", "image_url", "categories", "price", "available")


def present(answer: Recommendations, catalog: CatalogCache, explain: ExplainContext | None = None,
            **extra: Any) -> dict[str, Any]:
    """The JSON body of *answer* (with *extra* fields first), its items described from *catalog*.

    With *explain*, each item gets a ``reason``; the titles it names come in
    the same catalog read as the items'.
    """
    body = {**extra, **answer.to_json()}
    if not body["items"]:
        return body
    explainer = Explainer(answer, explain) if explain is not None else None
    wanted = [entry["item_id"] for entry in body["items"]]
    described = catalog.items(wanted + (explainer.items_to_describe() if explainer is not None else []))
    reasons = explainer.reasons(described) if explainer is not None else {}
    shown_items = []
    for entry in body["items"]:
        item = described.get(entry["item_id"])
        if item is not None:
            if item.blocked:
                continue
            shown = item.to_json()
            entry.update({name: shown[name] for name in SHOWN_FIELDS if name in shown})
        if explainer is not None:
            entry["reason"] = reasons[entry["item_id"]]
        shown_items.append(entry)
    body["items"] = shown_items
    return body
