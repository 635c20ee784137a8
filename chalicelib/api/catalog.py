"""Catalog routes (secret key): upsert one item, upsert a batch, read one item."""

from __future__ import annotations

from typing import Any

from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import parse_json_object, parse_path_id
from chalicelib.catalog.rules import check_catalog_batch, check_catalog_item
from chalicelib.errors import CatalogItemNotFound
from chalicelib.resources import app_resources

blueprint = ApiBlueprint(__name__)


@blueprint.route("/items/{item_id}", access=Access.SECRET, methods=["PUT"])
def put_item(caller: Caller, item_id: str) -> dict[str, Any]:
    item = check_catalog_item(parse_json_object(blueprint.current_request.raw_body), "item",
                              parse_path_id(item_id, "item_id"))
    return {"item": app_resources().catalog.put([item])[0].to_json()}


@blueprint.route("/items", access=Access.SECRET, methods=["POST"])
def put_items(caller: Caller) -> dict[str, Any]:
    items = check_catalog_batch(parse_json_object(blueprint.current_request.raw_body))
    stored = app_resources().catalog.put(items)
    return {"upserted": len(stored), "item_ids": [item.item_id for item in stored]}


@blueprint.route("/items/{item_id}", access=Access.SECRET)
def get_item(caller: Caller, item_id: str) -> dict[str, Any]:
    item_id = parse_path_id(item_id, "item_id")
    item = app_resources().catalog.get(item_id)
    if item is None:
        raise CatalogItemNotFound(f"the catalog has no item {item_id!r}")
    return item.to_json()
