"""Checks of HTTP input at the edge: query parameters, path ids and JSON bodies.

Every function raises :class:`InvalidRequest` naming the offending field, so
bad input becomes a 400 with a message, never a 500.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from chalicelib.config import (
    DEFAULT_RESULTS,
    EVENT_SOURCES,
    MAX_EVENT_VALUE,
    MAX_EVENTS_PER_REQUEST,
    MAX_ID_LENGTH,
    MAX_RESULTS,
    MAX_SESSION_ITEMS,
)
from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.events import Event, new_event_id

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_id(value: Any, field: str) -> str:
    """Return *value* if it is a usable id: a non-empty string of at most
    ``MAX_ID_LENGTH`` characters without control characters."""
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {type(value).__name__}", field)
    if not value:
        raise InvalidRequest(f"{field} must not be empty", field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"{field} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}", field)
    if _CONTROL_CHARACTERS.search(value):
        raise InvalidRequest(f"{field} must not contain control characters", field)
    return value


def check_count(value: Any, field: str = "n") -> int:
    """Return *value* as a result count in ``[1, MAX_RESULTS]``.

    Accepts an int, or a string of decimal digits (query parameters).
    """
    if isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,6}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{field} must be an integer between 1 and {MAX_RESULTS}, got {value!r}", field)
    if not 1 <= value <= MAX_RESULTS:
        raise InvalidRequest(f"{field} must be between 1 and {MAX_RESULTS}, got {value}", field)
    return value


def parse_count_query(query_params: Mapping[str, str] | None) -> int:
    """The ``n`` query parameter (default ``DEFAULT_RESULTS``); other parameters are refused."""
    params = dict(query_params or {})
    unknown = sorted(set(params) - {"n"})
    if unknown:
        raise InvalidRequest(f"unknown query parameter {unknown[0]!r}; only 'n' is accepted", unknown[0])
    if "n" not in params:
        return DEFAULT_RESULTS
    return check_count(params["n"])


def parse_json_object(raw_body: bytes | str | None) -> dict[str, Any]:
    """Decode a request body that must be a JSON object."""
    if raw_body is None or (isinstance(raw_body, (bytes, str)) and not raw_body.strip()):
        raise InvalidRequest("request body is empty; expected a JSON object", "body")
    try:
        body = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}", "body") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply", "body") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"request body must be a JSON object, got {type(body).__name__}", "body")
    return body


def parse_session_request(raw_body: bytes | str | None) -> tuple[list[str], int]:
    """Parse ``{"item_ids": [...], "n": 10}`` of ``POST /recommendations``.

    Returns
    -------
    (item_ids, n)
    """
    body = parse_json_object(raw_body)
    unknown = sorted(set(body) - {"item_ids", "n"})
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}; expected 'item_ids' and optional 'n'", unknown[0])
    if "item_ids" not in body:
        raise InvalidRequest("item_ids is required", "item_ids")
    item_ids = body["item_ids"]
    if not isinstance(item_ids, list):
        raise InvalidRequest(f"item_ids must be a list of strings, got {type(item_ids).__name__}", "item_ids")
    if len(item_ids) > MAX_SESSION_ITEMS:
        raise InvalidRequest(f"item_ids has {len(item_ids)} ids; the limit is {MAX_SESSION_ITEMS}", "item_ids")
    checked = [check_id(item_id, f"item_ids[{i}]") for i, item_id in enumerate(item_ids)]
    n = check_count(body["n"]) if "n" in body else DEFAULT_RESULTS
    return checked, n


@dataclass(frozen=True)
class EventRules:
    """What an incoming event may contain, from the stage settings."""

    event_types: frozenset[str]
    max_age: timedelta
    max_future: timedelta
    sources: frozenset[str] = EVENT_SOURCES


_EVENT_FIELDS = ("user_id", "item_id", "event_type", "event_id", "timestamp", "value", "session_id", "source")
_REQUIRED_EVENT_FIELDS = ("user_id", "item_id", "event_type")
#: Unix seconds beyond year 9999 cannot be a real timestamp.
MAX_TIMESTAMP_SECONDS = 253_402_300_799
#: Earliest time any event may carry, imports included: before it a timestamp is a bug.
EARLIEST_EVENT_TIME = datetime(1990, 1, 1, tzinfo=timezone.utc)


def parse_timestamp(value: Any, field: str) -> datetime:
    """An aware UTC datetime from unix seconds or an ISO-8601 string with an offset."""
    if isinstance(value, bool):
        raise InvalidRequest(f"{field} must be unix seconds or an ISO-8601 string, got a boolean", field)
    if isinstance(value, (int, float)):
        # Compare rather than convert: a JSON integer can exceed the float range.
        if not abs(value) <= MAX_TIMESTAMP_SECONDS:
            raise InvalidRequest(f"{field} must be a finite number of seconds, got {str(value)[:40]}", field)
        try:
            return datetime.fromtimestamp(value, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise InvalidRequest(f"{field} {value!r} is out of range", field) from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest(f"{field} {value!r} is not an ISO-8601 time", field) from None
        if parsed.tzinfo is None:
            raise InvalidRequest(f"{field} {value!r} has no UTC offset (add 'Z' or '+00:00')", field)
        return parsed.astimezone(timezone.utc)
    raise InvalidRequest(f"{field} must be unix seconds or an ISO-8601 string, got {type(value).__name__}", field)


def check_event(raw: Any, rules: EventRules, now: datetime, where: str) -> Event:
    """Validate one raw event (a JSON object) into an :class:`Event`.

    *where* prefixes field names in errors, e.g. ``events[3]``.
    """
    if not isinstance(raw, dict):
        raise InvalidRequest(f"{where} must be a JSON object, got {type(raw).__name__}", where)
    unknown = sorted(set(raw) - set(_EVENT_FIELDS))
    if unknown:
        raise InvalidRequest(
            f"{where}.{unknown[0]} is not an accepted field (accepted: {', '.join(_EVENT_FIELDS)})",
            f"{where}.{unknown[0]}",
        )
    for name in _REQUIRED_EVENT_FIELDS:
        if raw.get(name) is None:
            raise InvalidRequest(f"{where}.{name} is required", f"{where}.{name}")
    event_type = raw["event_type"]
    if not isinstance(event_type, str) or event_type not in rules.event_types:
        raise InvalidRequest(
            f"{where}.event_type {event_type!r} is not a known event type "
            f"(known: {', '.join(sorted(rules.event_types))})",
            f"{where}.event_type",
        )
    timestamp = now
    if raw.get("timestamp") is not None:
        timestamp = parse_timestamp(raw["timestamp"], f"{where}.timestamp")
        if timestamp > now + rules.max_future:
            raise InvalidRequest(f"{where}.timestamp {timestamp.isoformat()} is in the future", f"{where}.timestamp")
        if timestamp < max(now - rules.max_age, EARLIEST_EVENT_TIME):
            raise InvalidRequest(
                f"{where}.timestamp {timestamp.isoformat()} is older than the {rules.max_age.days} days accepted",
                f"{where}.timestamp",
            )
    value = raw.get("value")
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or not abs(value) <= MAX_EVENT_VALUE
    ):
        raise InvalidRequest(f"{where}.value must be a finite number of magnitude <= {MAX_EVENT_VALUE:g}", f"{where}.value")
    source = raw.get("source")
    if source is not None and (not isinstance(source, str) or source not in rules.sources):
        raise InvalidRequest(
            f"{where}.source {source!r} is not one of {', '.join(sorted(rules.sources))}", f"{where}.source"
        )
    return Event(
        user_id=check_id(raw["user_id"], f"{where}.user_id"),
        item_id=check_id(raw["item_id"], f"{where}.item_id"),
        event_type=event_type,
        event_id=check_id(raw["event_id"], f"{where}.event_id") if raw.get("event_id") is not None else new_event_id(),
        timestamp=timestamp,
        value=float(value) if value is not None else None,
        session_id=check_id(raw["session_id"], f"{where}.session_id") if raw.get("session_id") is not None else None,
        source=source,
    )


def parse_event_batch(raw_body: bytes | str | None, rules: EventRules, now: datetime) -> list[Event]:
    """Parse ``{"events": [...]}`` of ``POST /events``: 1 to ``MAX_EVENTS_PER_REQUEST`` valid events.

    The whole batch is refused at the first invalid event, so nothing of it is stored.
    """
    body = parse_json_object(raw_body)
    unknown = sorted(set(body) - {"events"})
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0]!r}; expected 'events'", unknown[0])
    raw_events = body.get("events")
    if not isinstance(raw_events, list):
        raise InvalidRequest("events must be a list of event objects", "events")
    if not raw_events:
        raise InvalidRequest("events must contain at least one event", "events")
    if len(raw_events) > MAX_EVENTS_PER_REQUEST:
        raise PayloadTooLarge(
            f"events has {len(raw_events)} entries; send at most {MAX_EVENTS_PER_REQUEST} per request", "events"
        )
    return [check_event(raw, rules, now, f"events[{i}]") for i, raw in enumerate(raw_events)]
