"""What the event routes do: store a batch with an exact receipt, erase a user."""

from __future__ import annotations

from typing import Any

from chalicelib.errors import EventsNotStored
from chalicelib.events import Event, EventLog


def record_events(event_log: EventLog, events: list[Event]) -> dict[str, Any]:
    """Store *events*; the answer of ``POST /events``.

    Returns ``{"accepted", "duplicates", "event_ids"}`` where ``event_ids``
    follows the request order (server-made ids included, so a client can
    resend safely).

    Raises
    ------
    EventsNotStored
        When retries ran out for some events; its details list exactly
        which (by index and event id) and count only what was stored.
    """
    receipt = event_log.write(events)
    body: dict[str, Any] = {
        "accepted": len(receipt.stored),
        "duplicates": len(receipt.duplicates),
        "event_ids": [event.event_id for event in events],
    }
    if receipt.failed:
        body["not_stored"] = [{"index": i, "event_id": events[i].event_id} for i in receipt.failed]
        raise EventsNotStored(
            f"{len(receipt.failed)} of {len(events)} events could not be stored; "
            "resend those listed in not_stored with the same event_id",
            details=body,
        )
    return body


def erase_user(event_log: EventLog, user_id: str) -> dict[str, Any]:
    """Delete every event of *user_id*; the answer of ``DELETE /users/{id}``."""
    receipt = event_log.erase(user_id)
    return {
        "user_id": receipt.user_id,
        "deleted_events": receipt.deleted_events,
        "erased_at": receipt.erased_at.isoformat(timespec="milliseconds"),
    }
