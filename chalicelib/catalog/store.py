"""The catalog table: upserts, reads by id, and batch reads for answers."""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Callable

from pynamodb.exceptions import PynamoDBException

from chalicelib.catalog.item import INDEXED_FIELDS, CatalogItem, CatalogRecord, catalog_connection, item_from_raw
from chalicelib.errors import CatalogUnavailable

logger = logging.getLogger(__name__)


class Catalog:
    """Items of the catalog in their DynamoDB table.

    Parameters
    ----------
    model: the :class:`CatalogRecord` subclass bound to the table (see ``catalog_model``).
    """

    #: How many items one call of :meth:`all_items` reads.
    SCAN_PAGE_ITEMS = 1000

    def __init__(self, model: type[CatalogRecord]) -> None:
        self._model = model
        self._connection = catalog_connection(model)
        self._listeners: list[Callable[[list[str]], None]] = []

    def on_change(self, listener: Callable[[list[str]], None]) -> None:
        """Call *listener* with the ids of the items each :meth:`put` of this instance stored.

        The instance's caches follow its own writes at once; other instances
        follow within their TTL.
        """
        self._listeners.append(listener)

    def put(self, items: list[CatalogItem]) -> list[CatalogItem]:
        """Store *items* whole (an upsert: a resend writes the same items), stamped now.

        Returns the items as stored, with ``updated_at``.

        Raises
        ------
        CatalogUnavailable
            When DynamoDB did not take them all after pynamodb's retries (resend the request).
        """
        updated_at = datetime.now(timezone.utc)
        records = [self._model.of_item(item, updated_at) for item in items]
        try:
            with self._model.batch_write() as batch:  # unprocessed items are resent by pynamodb
                for record in records:
                    batch.save(record)
        except PynamoDBException as exc:
            logger.error("catalog write of %d items failed: %s", len(records), exc)
            raise CatalogUnavailable("the catalog did not take the items in time; resend the request "
                                     "(upserts are idempotent)") from exc
        stored = [record.to_item() for record in records]
        for listener in self._listeners:
            listener([item.item_id for item in stored])
        return stored

    def get(self, item_id: str) -> CatalogItem | None:
        """The item *item_id*, or None when the catalog does not hold it."""
        try:
            record = self._model.get(item_id, consistent_read=True)
        except self._model.DoesNotExist:
            return None
        except PynamoDBException as exc:
            logger.error("catalog read failed: %s", exc)
            raise CatalogUnavailable("the catalog did not answer in time") from exc
        return record.to_item()

    def get_many(self, item_ids: list[str]) -> dict[str, CatalogItem]:
        """The items among *item_ids* that the catalog holds, by id."""
        try:
            return {record.item_id: record.to_item() for record in self._model.batch_get(list(dict.fromkeys(item_ids)))}
        except PynamoDBException as exc:
            logger.error("catalog batch read failed: %s", exc)
            raise CatalogUnavailable("the catalog did not answer in time") from exc

    def all_items(self) -> list[CatalogItem]:
        """Every item of the catalog, for the filter index: one scan, of the fields filters and search use
        (no links, no ``updated_at``).

        Raises
        ------
        CatalogUnavailable
            When a page of the scan fails after pynamodb's retries.
        """
        items: list[CatalogItem] = []
        start_key = None
        try:
            while True:
                # Pages of the fields filters and search use, read raw: no model objects per item.
                page = self._connection.scan(attributes_to_get=list(INDEXED_FIELDS), limit=self.SCAN_PAGE_ITEMS,
                                             exclusive_start_key=start_key)
                items += [item_from_raw(raw) for raw in page.get("Items", [])]
                start_key = page.get("LastEvaluatedKey")
                if not start_key:
                    return items
        except PynamoDBException as exc:
            logger.error("catalog scan failed: %s", exc)
            raise CatalogUnavailable("the catalog could not be read whole") from exc

    def ensure_table(self) -> bool:
        """Create the table (on-demand billing) unless it exists; True when created."""
        if self._model.exists():
            return False
        self._model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
        return True
