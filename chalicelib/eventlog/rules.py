"""What an event may contain: the checks the API and the importer both apply.

Every function raises :class:`InvalidRequest` naming the offending field, so
bad input becomes a 400 (or a rejected import line) with a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.errors import InvalidRequest
from chalicelib.eventlog.item import Event, new_event_id

MAX_ID_LENGTH = 256
MAX_EVENT_VALUE = 1e9
#: Where an event may say it came from.
EVENT_SOURCES = frozenset({"web", "app", "chatbot", "email", "import"})
#: Unix seconds beyond year 9999 cannot be a real timestamp.
MAX_TIMESTAMP_SECONDS = 253_402_300_799
#: Earliest time any event may carry, imports included: before it a timestamp is a bug.
EARLIEST_EVENT_TIME = datetime(1990, 1, 1, tzinfo=timezone.utc)

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_EVENT_FIELDS = ("user_id", "item_id", "event_type", "event_id", "timestamp", "value", "session_id", "source")
_REQUIRED_EVENT_FIELDS = ("user_id", "item_id", "event_type")


@dataclass(frozen=True)
class EventRules:
    """What an incoming event may contain, from the stage settings."""

    event_types: frozenset[str]
    max_age: timedelta
    max_future: timedelta
    sources: frozenset[str] = EVENT_SOURCES


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
