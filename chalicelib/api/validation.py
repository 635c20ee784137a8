"""Checks of HTTP input at the edge: query parameters, path ids and JSON bodies.

Every function raises :class:`InvalidRequest` naming the offending field, so
bad input becomes a 400 with a message, never a 500. What an event may hold,
and what an id is, is checked by :mod:`chalicelib.eventlog.rules`, shared
with the importer.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import unquote

from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.eventlog.item import Event
from chalicelib.eventlog.rules import EventRules, check_event, check_id

#: Bounds of the HTTP API; part of the contract, not tunable per stage.
MAX_RESULTS = 100
DEFAULT_RESULTS = 10
MAX_SESSION_ITEMS = 500
MAX_EVENTS_PER_REQUEST = 100


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


def check_query(query_params: Mapping[str, str] | None, accepted: tuple[str, ...]) -> None:
    """Refuse query parameters a route does not accept, and any given more than once.

    Parameters
    ----------
    query_params: the request's query parameters (Chalice's ``MultiDict``, or a plain mapping).
    accepted: the names the route accepts.

    Raises
    ------
    InvalidRequest
        Naming the first offending parameter (in sorted order) as its field.
    """
    if not query_params:
        return
    allowed = f"only {', '.join(map(repr, accepted))} accepted" if accepted else "this route takes none"
    getlist = getattr(query_params, "getlist", None)
    for name in sorted(query_params):
        if name not in accepted:
            raise InvalidRequest(f"unknown query parameter {name[:60]!r}; {allowed}", name)
        # A repeated parameter has no single meaning: Chalice would keep one copy, silently.
        if getlist is not None and len(getlist(name)) > 1:
            raise InvalidRequest(f"query parameter {name!r} is given {len(getlist(name))} times; give it once", name)


def parse_count_query(query_params: Mapping[str, str] | None) -> int:
    """The ``n`` query parameter, or ``DEFAULT_RESULTS`` when absent.

    Which parameters a route accepts is checked before its view runs (:func:`check_query`).
    """
    params = query_params or {}
    return check_count(params["n"]) if "n" in params else DEFAULT_RESULTS


def parse_path_id(value: str, field: str) -> str:
    """An id from a URL path: percent-decoded until no escape is left, then checked as every id is.

    chalice local hands views the path segment as sent, API Gateway hands them
    it decoded once: decoding to the end reads both alike (and any proxy that
    decodes once more or once less). No id holds a percent-escape
    (:func:`check_id`), so this never turns one id into another.

    Raises
    ------
    InvalidRequest
        When the escapes are not UTF-8, or the decoded id breaks the rules of ids.
    """
    decoded = value
    while "%" in decoded:
        try:
            once = unquote(decoded, errors="strict")
        except UnicodeDecodeError:
            raise InvalidRequest(f"{field} holds percent-escapes that are not UTF-8 text", field) from None
        if once == decoded:
            break  # a "%" that escapes nothing, as in "100%"
        decoded = once
    return check_id(decoded, field)


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
