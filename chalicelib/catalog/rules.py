"""What a catalog item may hold: as strict as events, so that what validation accepts DynamoDB stores.

Every function raises :class:`InvalidRequest` naming the offending field.
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Any
from urllib.parse import urlsplit

from chalicelib.catalog.item import CatalogItem, Price
from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.eventlog.item import MIN_NUMBER_MAGNITUDE
from chalicelib.eventlog.rules import check_id

MAX_TITLE_LENGTH = 300
MAX_URL_LENGTH = 2048
MAX_CATEGORIES = 20
MAX_CATEGORY_LENGTH = 100
MAX_ATTRIBUTES = 20
MAX_ATTRIBUTE_NAME_LENGTH = 64
MAX_ATTRIBUTE_TEXT_LENGTH = 500
MAX_PRICE = 1e9
#: Items per POST /items: four BatchWriteItem calls.
MAX_ITEMS_PER_REQUEST = 100

_FIELDS = ("item_id", "title", "url", "image_url", "categories", "price", "available", "blocked", "attributes")
_CURRENCY = re.compile(r"[A-Z]{3}")
_ATTRIBUTE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def check_text(value: Any, field: str, max_length: int) -> str:
    """*value* as visible text in NFC: 1 to *max_length* characters, no control or format characters,
    no whitespace at either end."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {type(value).__name__}", field)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(f"{field} holds a lone surrogate, which UTF-8 cannot encode", field) from None
    value = unicodedata.normalize("NFC", value)
    if not value or value != value.strip():
        raise InvalidRequest(f"{field} must be non-empty, without whitespace at either end", field)
    if len(value) > max_length:
        raise InvalidRequest(f"{field} is {len(value)} characters long; the limit is {max_length}", field)
    if any(unicodedata.category(character) in ("Cc", "Cf") for character in value):
        raise InvalidRequest(f"{field} must not contain control or invisible format characters", field)
    return value


def check_url(value: Any, field: str) -> str:
    """An absolute http(s) URL of at most ``MAX_URL_LENGTH`` characters, without spaces."""
    text = check_text(value, field, MAX_URL_LENGTH)
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in text):
        raise InvalidRequest(f"{field} must be an absolute http or https URL", field)
    return text


def _check_bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{field} must be true or false, got {type(value).__name__}", field)
    return value


def _check_number(value: Any, field: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high or 0 < abs(value) < MIN_NUMBER_MAGNITUDE:
        raise InvalidRequest(f"{field} must be a number from {low:g} to {high:g}", field)
    return float(value)


def _check_price(value: Any, field: str) -> Price:
    if not isinstance(value, dict) or set(value) != {"amount", "currency"}:
        raise InvalidRequest(f"{field} must be an object with amount and currency, e.g. "
                             '{"amount": 9.99, "currency": "EUR"}', field)
    currency = value["currency"]
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise InvalidRequest(f"{field}.currency must be an ISO 4217 code of three capital letters", f"{field}.currency")
    return Price(_check_number(value["amount"], f"{field}.amount", 0, MAX_PRICE), currency)


def _check_categories(value: Any, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidRequest(f"{field} must be a list of strings", field)
    if len(value) > MAX_CATEGORIES:
        raise InvalidRequest(f"{field} has {len(value)} entries; the limit is {MAX_CATEGORIES}", field)
    categories = [check_text(entry, f"{field}[{i}]", MAX_CATEGORY_LENGTH) for i, entry in enumerate(value)]
    return tuple(dict.fromkeys(categories))  # repeats collapse, order kept


def _check_attributes(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidRequest(f"{field} must be an object", field)
    if len(value) > MAX_ATTRIBUTES:
        raise InvalidRequest(f"{field} has {len(value)} entries; the limit is {MAX_ATTRIBUTES}", field)
    checked: dict[str, Any] = {}
    for name, entry in value.items():
        if not _ATTRIBUTE_NAME.fullmatch(name) or len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
            raise InvalidRequest(f"{field} name {name[:70]!r} must be a letter then letters, digits or _ "
                                 f"(at most {MAX_ATTRIBUTE_NAME_LENGTH})", field)
        where = f"{field}.{name}"
        if isinstance(entry, bool):
            checked[name] = entry
        elif isinstance(entry, (int, float)):
            _check_number(entry, where, -MAX_PRICE, MAX_PRICE)
            checked[name] = entry  # as sent: DynamoDB gives 280 back as 280, not 280.0
        elif isinstance(entry, str):
            checked[name] = check_text(entry, where, MAX_ATTRIBUTE_TEXT_LENGTH)
        else:
            raise InvalidRequest(f"{where} must be a string, a number or a boolean", where)
    return checked


def check_catalog_item(raw: Any, where: str = "item", item_id: str | None = None) -> CatalogItem:
    """Validate one raw item (a JSON object) into a :class:`CatalogItem`.

    *item_id*, when given (``PUT /items/{item_id}``), is the item's id: the
    body may repeat it but not name another. *where* prefixes field names in errors.
    """
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be a JSON object, got {type(raw).__name__}", where)
    unknown = sorted(set(raw) - set(_FIELDS))
    if unknown:
        raise InvalidRequest(f"{where}.{unknown[0]} is not an accepted field (accepted: {', '.join(_FIELDS)})",
                             f"{where}.{unknown[0]}")
    if item_id is None:
        if raw.get("item_id") is None:
            raise InvalidRequest(f"{where}.item_id is required", f"{where}.item_id")
        item_id = check_id(raw["item_id"], f"{where}.item_id")
    elif raw.get("item_id") is not None and check_id(raw["item_id"], f"{where}.item_id") != item_id:
        raise InvalidRequest(f"{where}.item_id names another item than the path", f"{where}.item_id")
    if raw.get("title") is None:
        raise InvalidRequest(f"{where}.title is required", f"{where}.title")

    def optional(name: str, check: Any) -> Any:
        return check(raw[name], f"{where}.{name}") if raw.get(name) is not None else None

    return CatalogItem(
        item_id=item_id,
        title=check_text(raw["title"], f"{where}.title", MAX_TITLE_LENGTH),
        url=optional("url", check_url),
        image_url=optional("image_url", check_url),
        categories=optional("categories", _check_categories) or (),
        price=optional("price", _check_price),
        available=_check_bool(raw.get("available", True), f"{where}.available"),
        blocked=_check_bool(raw.get("blocked", False), f"{where}.blocked"),
        attributes=optional("attributes", _check_attributes) or {},
    )


def check_catalog_batch(raw: Any) -> list[CatalogItem]:
    """``{"items": [...]}`` of ``POST /items``: 1 to ``MAX_ITEMS_PER_REQUEST`` valid items, distinct ids."""
    if not isinstance(raw, dict) or set(raw) != {"items"}:
        raise InvalidRequest('the body must be {"items": [...]}', "items")
    entries = raw["items"]
    if not isinstance(entries, list) or not entries:
        raise InvalidRequest("items must be a non-empty list of item objects", "items")
    if len(entries) > MAX_ITEMS_PER_REQUEST:
        raise PayloadTooLarge(f"items has {len(entries)} entries; send at most {MAX_ITEMS_PER_REQUEST} per request",
                              "items")
    items = [check_catalog_item(entry, f"items[{i}]") for i, entry in enumerate(entries)]
    seen: set[str] = set()
    for i, item in enumerate(items):
        if item.item_id in seen:
            raise InvalidRequest(f"items[{i}].item_id repeats an earlier item of this request", f"items[{i}].item_id")
        seen.add(item.item_id)
    return items
