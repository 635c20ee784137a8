"""The catalog item: the one definition of what the catalog table stores, and its JSON form.

One item per ``item_id`` (the partition key): a write replaces the whole item,
so an upsert sent twice leaves the same item (idempotent, safe to resend).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pynamodb.attributes import (
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    UnicodeAttribute,
    UTCDateTimeAttribute,
)
from pynamodb.connection import TableConnection
from pynamodb.connection.base import MetaTable
from pynamodb.models import Model


@dataclass(frozen=True)
class Price:
    """An amount in a currency (ISO 4217 code)."""

    amount: float
    currency: str


@dataclass(frozen=True)
class CatalogItem:
    """One item of the catalog, validated."""

    item_id: str
    title: str
    url: str | None = None
    image_url: str | None = None
    categories: tuple[str, ...] = ()
    price: Price | None = None
    available: bool = True
    blocked: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The item as the API shows it (absent optional fields left out)."""
        body: dict[str, Any] = {"item_id": self.item_id, "title": self.title}
        if self.url is not None:
            body["url"] = self.url
        if self.image_url is not None:
            body["image_url"] = self.image_url
        body["categories"] = list(self.categories)
        if self.price is not None:
            body["price"] = {"amount": self.price.amount, "currency": self.price.currency}
        body["available"] = self.available
        body["blocked"] = self.blocked
        body["attributes"] = dict(self.attributes)
        if self.updated_at is not None:
            body["updated_at"] = self.updated_at.isoformat(timespec="milliseconds")
        return body


class CatalogRecord(Model):
    """The stored form of a :class:`CatalogItem`; bound to a table by :func:`catalog_model`."""

    class Meta:
        table_name = "catalog"
        region = "us-east-1"

    item_id = UnicodeAttribute(hash_key=True)
    title = UnicodeAttribute()
    url = UnicodeAttribute(null=True)
    image_url = UnicodeAttribute(null=True)
    categories = ListAttribute(of=UnicodeAttribute, null=True)
    price_amount = NumberAttribute(null=True)
    price_currency = UnicodeAttribute(null=True)
    available = BooleanAttribute(default=True)
    blocked = BooleanAttribute(default=False)
    attributes = MapAttribute(null=True)
    updated_at = UTCDateTimeAttribute()

    @classmethod
    def of_item(cls, item: CatalogItem, updated_at: datetime) -> "CatalogRecord":
        """The record storing *item*, as of *updated_at*."""
        return cls(
            item.item_id, title=item.title, url=item.url, image_url=item.image_url,
            categories=list(item.categories),
            price_amount=item.price.amount if item.price else None,
            price_currency=item.price.currency if item.price else None,
            available=item.available, blocked=item.blocked,
            attributes=dict(item.attributes) or None, updated_at=updated_at,
        )

    def to_item(self) -> CatalogItem:
        """The stored item as a :class:`CatalogItem`."""
        price = None
        if self.price_amount is not None and self.price_currency is not None:
            price = Price(float(self.price_amount), self.price_currency)
        attributes = self.attributes.as_dict() if self.attributes is not None else {}
        return CatalogItem(
            item_id=self.item_id, title=self.title, url=self.url, image_url=self.image_url,
            categories=tuple(self.categories or ()), price=price, available=bool(self.available),
            blocked=bool(self.blocked), attributes=attributes, updated_at=self.updated_at,
        )


def catalog_model(table_name: str, region: str, host: str | None, *, connect_timeout: float = 2.0,
                  read_timeout: float = 5.0, retries: int = 3) -> type[CatalogRecord]:
    """A :class:`CatalogRecord` subclass bound to one table, endpoint and timeouts."""
    meta_attributes: dict[str, Any] = {
        "table_name": table_name, "region": region, "connect_timeout_seconds": connect_timeout,
        "read_timeout_seconds": read_timeout, "max_retry_attempts": retries,
    }
    if host:
        meta_attributes["host"] = host
    return type(f"CatalogRecord_{table_name}", (CatalogRecord,), {"Meta": type("Meta", (), meta_attributes)})


def catalog_connection(model: type[CatalogRecord]) -> TableConnection:
    """A low-level connection to *model*'s table (same endpoint, timeouts and retries), for raw scans.

    Told the key schema, so that it needs no DescribeTable call.
    """
    meta = model.Meta
    schema = MetaTable({
        "TableName": meta.table_name,
        "KeySchema": [{"AttributeName": "item_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "item_id", "AttributeType": "S"}],
    })
    return TableConnection(
        meta.table_name, region=meta.region, host=getattr(meta, "host", None),
        connect_timeout_seconds=meta.connect_timeout_seconds, read_timeout_seconds=meta.read_timeout_seconds,
        max_retry_attempts=meta.max_retry_attempts, meta_table=schema,
    )


def _plain(value: dict[str, Any]) -> Any:
    """A DynamoDB attribute value (``{"S": "x"}``, ``{"N": "2"}``, ...) as Python, numbers as pynamodb reads them."""
    (kind, raw), = value.items()
    if kind == "S" or kind == "BOOL":
        return raw
    if kind == "N":
        return json.loads(raw)
    if kind == "L":
        return [_plain(entry) for entry in raw]
    if kind == "M":
        return {name: _plain(entry) for name, entry in raw.items()}
    return None  # NULL, and types the catalog never writes


def item_from_raw(raw: dict[str, dict[str, Any]]) -> CatalogItem:
    """The :class:`CatalogItem` of one raw scanned item (the fields :data:`INDEXED_FIELDS` read).

    A scan of the whole catalog spends most of its time turning items into
    objects: this skips pynamodb's model objects, for a fraction of the cost.
    """
    fields = {name: _plain(value) for name, value in raw.items()}
    amount, currency = fields.get("price_amount"), fields.get("price_currency")
    return CatalogItem(
        item_id=fields["item_id"], title=fields.get("title", ""),
        categories=tuple(fields.get("categories") or ()),
        price=Price(float(amount), currency) if amount is not None and currency is not None else None,
        available=fields.get("available", True), blocked=fields.get("blocked", False),
        attributes=fields.get("attributes") or {},
    )


#: What a scan for the filter index reads of each item.
INDEXED_FIELDS = ("item_id", "title", "categories", "price_amount", "price_currency", "available", "blocked",
                  "attributes")
