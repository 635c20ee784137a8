"""Write routes of the event log: store a batch of events with an exact receipt, erase a user."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from chalice import Response
from chalice.app import Request

from chalicelib import telemetry
from chalicelib.access.control import Access, Caller
from chalicelib.api.routing import ApiBlueprint
from chalicelib.api.validation import parse_event_batch, parse_path_id
from chalicelib.deadlines import Deadline
from chalicelib.errors import EventsNotStored
from chalicelib.eventlog.item import Event
from chalicelib.eventlog.log import EventLog
from chalicelib.resources import app_resources

blueprint = ApiBlueprint(__name__)


def count_events(request: Request, response: Response) -> None:
    """Events accepted, duplicate, not stored (a 503) or rejected (a refused batch) by ``POST /events``."""
    body = response.body if isinstance(response.body, dict) else {}
    if "accepted" in body:
        telemetry.count("EventsAccepted", body["accepted"])
        telemetry.count("EventsDuplicate", body["duplicates"])
        telemetry.count("EventsNotStored", len(body.get("not_stored", [])))
    elif 400 <= response.status_code < 500:
        telemetry.count("EventsRejected", _events_in(request))


def _events_in(request: Request) -> int:
    """How many events a refused request carried (1 when its body is not even a list of events)."""
    try:
        events = json.loads(request.raw_body or b"{}").get("events")
    except (ValueError, AttributeError, RecursionError):
        return 1
    return len(events) if isinstance(events, list) and events else 1


@blueprint.route("/events", access=Access.USER, observe=count_events, methods=["POST"])
def post_events(caller: Caller) -> Response:
    resources = app_resources()
    events = parse_event_batch(blueprint.current_request.raw_body, resources.event_rules, datetime.now(timezone.utc))
    for event in events:
        caller.require_user(event.user_id)
    resources.access.spend_events(caller, [event.user_id for event in events])
    return Response(body=record_events(resources.event_log, events, resources.request_deadline()), status_code=202)


@blueprint.route("/users/{user_id}", access=Access.SECRET, methods=["DELETE"])
def delete_user(caller: Caller, user_id: str) -> dict[str, Any]:
    resources = app_resources()
    return erase_user(resources.event_log, parse_path_id(user_id, "user_id"), resources.request_deadline())


def record_events(event_log: EventLog, events: list[Event], deadline: Deadline | None = None) -> dict[str, Any]:
    """Store *events* before *deadline*; the answer of ``POST /events``.

    Returns ``{"accepted", "duplicates", "event_ids"}`` where ``event_ids``
    follows the request order (server-made ids included, so a client can
    resend safely).

    Raises
    ------
    EventsNotStored
        When retries or the deadline ran out for some events; its details
        list exactly which (by index and event id) and count only what was
        stored.
    """
    receipt = event_log.write(events, deadline)
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


def erase_user(event_log: EventLog, user_id: str, deadline: Deadline | None = None) -> dict[str, Any]:
    """Delete every event of *user_id* received until now; the answer of ``DELETE /users/{id}``."""
    receipt = event_log.erase(user_id, deadline)
    return {
        "user_id": receipt.user_id,
        "deleted_events": receipt.deleted_events,
        "erased_at": receipt.erased_at.isoformat(timespec="milliseconds"),
    }
