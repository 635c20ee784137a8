"""What an event may contain: the checks the API and the importer both apply.

Every function raises :class:`InvalidRequest` naming the offending field, so
bad input becomes a 400 (or a rejected import line) with a message.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from chalicelib.errors import InvalidRequest
from chalicelib.eventlog.item import (
    MAX_EVENT_ID_BYTES,
    MAX_USER_ID_BYTES,
    MIN_NUMBER_MAGNITUDE,
    Event,
    new_event_id,
)

MAX_ID_LENGTH = 256
MAX_EVENT_VALUE = 1e9
#: Where an event may say it came from.
EVENT_SOURCES = frozenset({"web", "app", "chatbot", "email", "import"})
#: Unix seconds beyond year 9999 cannot be a real timestamp.
MAX_TIMESTAMP_SECONDS = 253_402_300_799
#: Earliest time any event may carry, imports included: before it a timestamp is a bug.
EARLIEST_EVENT_TIME = datetime(1990, 1, 1, tzinfo=timezone.utc)

#: Unicode categories no id may hold: control characters (Cc) and invisible format characters (Cf:
#: U+200B, U+202E, U+FEFF, ...), with which two ids that look the same are different users or items.
_REFUSED_CATEGORIES = {"Cc": "a control character", "Cf": "an invisible format character"}
#: ``%`` and two hex digits: a path carrying it would be read one way by chalice local (which passes
#: paths raw) and another by API Gateway (which decodes them), so no id may hold one.
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_EVENT_FIELDS = ("user_id", "item_id", "event_type", "event_id", "timestamp", "value", "session_id", "source")
_REQUIRED_EVENT_FIELDS = ("user_id", "item_id", "event_type")


@dataclass(frozen=True)
class EventRules:
    """What an incoming event may contain, from the stage settings."""

    event_types: frozenset[str]
    max_age: timedelta
    max_future: timedelta
    sources: frozenset[str] = EVENT_SOURCES


def check_id(value: Any, field: str, max_bytes: int | None = None) -> str:
    """Return *value* as a usable id, normalised to Unicode NFC.

    An id is a string of 1 to ``MAX_ID_LENGTH`` characters once in NFC, without
    surrogates, control (Cc) or format (Cf) characters, without whitespace at
    either end and without a percent-escape (``%`` and two hex digits).

    Parameters
    ----------
    value: the id as received.
    field: named by the error.
    max_bytes: the most UTF-8 bytes the id may take, where it becomes part of a
        DynamoDB key (``MAX_USER_ID_BYTES``, ``MAX_EVENT_ID_BYTES``).

    Raises
    ------
    InvalidRequest
        When *value* breaks one of these rules; the message says which.
    """
    if not isinstance(value, str):
        raise InvalidRequest(f"{field} must be a string, got {type(value).__name__}", field)
    try:
        # Before anything else: what has no UTF-8 form is not text DynamoDB (or a log line) can hold.
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidRequest(
            f"{field} holds U+{ord(value[exc.start]):04X}, a lone surrogate, which is not text: UTF-8 cannot "
            "encode it (in a file: bytes that are not UTF-8)", field) from None
    # One spelling per id: "é" typed as e + U+0301 must be the same user or item as "é".
    value = unicodedata.normalize("NFC", value)
    if not value:
        raise InvalidRequest(f"{field} must not be empty", field)
    if len(value) > MAX_ID_LENGTH:
        raise InvalidRequest(f"{field} is {len(value)} characters long; the limit is {MAX_ID_LENGTH}", field)
    _refuse_categories(value, field)
    if value[0].isspace() or value[-1].isspace():
        # Refused rather than stripped: "u0 " is a client's bug, and silently making it "u0" would
        # let the same bug write under another id elsewhere (a path, a token) unnoticed.
        raise InvalidRequest(f"{field} must not start or end with whitespace", field)
    if _PERCENT_ESCAPE.search(value):
        raise InvalidRequest(f"{field} must not contain a percent-escape (% and two hex digits)", field)
    if max_bytes is not None and len(value.encode("utf-8")) > max_bytes:
        raise InvalidRequest(
            f"{field} is {len(value.encode('utf-8'))} bytes long in UTF-8; the limit is {max_bytes}", field)
    return value


def _refuse_categories(value: str, field: str) -> None:
    for character in value:
        category = unicodedata.category(character)
        if category in _REFUSED_CATEGORIES:
            raise InvalidRequest(
                f"{field} must not contain {_REFUSED_CATEGORIES[category]} (U+{ord(character):04X})", field)


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
        shown = repr(value[:60])
        try:
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRequest(f"{field} {shown} is not an ISO-8601 time", field) from None
        if parsed.tzinfo is None:
            raise InvalidRequest(f"{field} {shown} has no UTC offset (add 'Z' or '+00:00')", field)
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:00:00+05:00 is in year 0 in UTC, which datetime cannot hold
            raise InvalidRequest(f"{field} {shown} is outside the years 1 to 9999 once in UTC", field) from None
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
        or 0 < abs(value) < MIN_NUMBER_MAGNITUDE  # DynamoDB refuses a number this close to 0
    ):
        raise InvalidRequest(
            f"{where}.value must be 0 or a finite number of magnitude {MIN_NUMBER_MAGNITUDE:g} to {MAX_EVENT_VALUE:g}",
            f"{where}.value",
        )
    source = raw.get("source")
    if source is not None and (not isinstance(source, str) or source not in rules.sources):
        raise InvalidRequest(
            f"{where}.source {source!r} is not one of {', '.join(sorted(rules.sources))}", f"{where}.source"
        )
    event_id = raw.get("event_id")
    return Event(
        user_id=check_id(raw["user_id"], f"{where}.user_id", MAX_USER_ID_BYTES),
        item_id=check_id(raw["item_id"], f"{where}.item_id"),
        event_type=event_type,
        event_id=new_event_id() if event_id is None else check_id(event_id, f"{where}.event_id", MAX_EVENT_ID_BYTES),
        timestamp=timestamp,
        value=float(value) if value is not None else None,
        session_id=check_id(raw["session_id"], f"{where}.session_id") if raw.get("session_id") is not None else None,
        source=source,
    )
