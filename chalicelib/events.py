"""The event item: one user interaction in the DynamoDB event log.

This module is the single definition of the item, written by the API and read
by training. The table is bound to a name and endpoint at run time by
:func:`event_model`, so the same class serves AWS, dynalite and moto.
"""

from __future__ import annotations

from typing import Any

from pynamodb.attributes import NumberAttribute, UnicodeAttribute, UTCDateTimeAttribute
from pynamodb.models import Model


class EventRecord(Model):
    """One interaction of a user with an item.

    ``user_id`` partitions the log, so a user's events are one Query away;
    ``event_key`` sorts them by time and is unique per event
    (``<ISO timestamp>#<event_id>``).
    """

    class Meta:
        table_name = "events"
        region = "us-east-1"

    user_id = UnicodeAttribute(hash_key=True)
    event_key = UnicodeAttribute(range_key=True)
    event_id = UnicodeAttribute()
    item_id = UnicodeAttribute()
    event_type = UnicodeAttribute()
    timestamp = UTCDateTimeAttribute()
    value = NumberAttribute(null=True)


def event_model(table_name: str, region: str, host: str | None) -> type[EventRecord]:
    """An :class:`EventRecord` subclass bound to one table and endpoint.

    Parameters
    ----------
    table_name: the DynamoDB table.
    region: its AWS region.
    host: endpoint URL of a local DynamoDB, or None for AWS.
    """
    meta_attributes: dict[str, Any] = {
        "table_name": table_name,
        "region": region,
        "connect_timeout_seconds": 2,
        "read_timeout_seconds": 5,
        "max_retry_attempts": 3,
    }
    if host:
        meta_attributes["host"] = host
    meta = type("Meta", (), meta_attributes)
    return type(f"EventRecord_{table_name}", (EventRecord,), {"Meta": meta})


def ensure_table(model: type[EventRecord]) -> bool:
    """Create the table of *model* (on-demand billing) unless it exists.

    Returns True when the table was created.
    """
    if model.exists():
        return False
    model.create_table(billing_mode="PAY_PER_REQUEST", wait=True)
    return True
