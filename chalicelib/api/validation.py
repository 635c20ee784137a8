"""Checks of HTTP input at the edge: query parameters, path ids and JSON bodies.

Every function raises :class:`InvalidRequest` naming the offending field, so
bad input becomes a 400 with a message, never a 500. What an event may hold,
and what an id is, is checked by :mod:`chalicelib.eventlog.rules`, shared
with the importer.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import unquote

from chalicelib.catalog.index import words_of
from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.eventlog.item import MAX_USER_ID_BYTES, Event
from chalicelib.eventlog.rules import EventRules, check_event, check_id
from chalicelib.insights.performance import SORTS, SOURCES, WINDOWS, InsightsQuery, read_cursor
from chalicelib.serving.chat import ChatRequest
from chalicelib.serving.filters import ItemFilter

#: Bounds of the HTTP API; part of the contract, not tunable per stage.
MAX_RESULTS = 100
DEFAULT_RESULTS = 10
MAX_SESSION_ITEMS = 500
MAX_EVENTS_PER_REQUEST = 100
MAX_RANK_CANDIDATES = 500
MAX_FILTER_CATEGORIES = 20
MAX_EXCLUDED = 500
MAX_CATEGORY_LENGTH = 256
MAX_PRICE = 1e12
MAX_AUDIENCE = 1000
DEFAULT_AUDIENCE = 100
#: The query parameters of a filtered read route (``n`` aside).
FILTER_QUERY = ("category", "exclude", "available_only", "min_price", "max_price", "explain")
_FILTER_FIELDS = frozenset(FILTER_QUERY)


def check_count(value: Any, field: str = "n", *, from_query: bool = False, maximum: int = MAX_RESULTS) -> int:
    """Return *value* as a result count in ``[1, maximum]``.

    Accepts a JSON integer, or with *from_query* a string of decimal digits.
    """
    if from_query and isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,6}", value.strip()):
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidRequest(f"{field} must be an integer between 1 and {maximum}, got {value!r}", field)
    if not 1 <= value <= maximum:
        raise InvalidRequest(f"{field} must be between 1 and {maximum}, got {value}", field)
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
    return check_count(params["n"], from_query=True) if "n" in params else DEFAULT_RESULTS


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


def check_id_list(value: Any, field: str, limit: int, *, required: bool = True) -> list[str]:
    """*value* as a list of at most *limit* ids (each checked by :func:`check_id`)."""
    if not isinstance(value, list):
        raise InvalidRequest(f"{field} must be a list of strings, got {type(value).__name__}", field)
    if required and not value:
        raise InvalidRequest(f"{field} must hold at least one id", field)
    if len(value) > limit:
        raise InvalidRequest(f"{field} has {len(value)} ids; the limit is {limit}", field)
    return [check_id(item_id, f"{field}[{i}]") for i, item_id in enumerate(value)]


def _check_categories(values: list[Any], field: str) -> tuple[str, ...]:
    if not 1 <= len(values) <= MAX_FILTER_CATEGORIES:
        raise InvalidRequest(f"{field} must name 1 to {MAX_FILTER_CATEGORIES} categories, got {len(values)}", field)
    for value in values:
        if not isinstance(value, str) or not value.strip() or len(value) > MAX_CATEGORY_LENGTH:
            raise InvalidRequest(f"{field} holds {str(value)[:60]!r}; a category is a non-empty string of at most "
                                 f"{MAX_CATEGORY_LENGTH} characters", field)
    return tuple(dict.fromkeys(value.strip() for value in values))


def _check_price(value: Any, field: str) -> float:
    if isinstance(value, str):
        if not re.fullmatch(r"\d{1,13}(\.\d{1,6})?", value.strip()):
            raise InvalidRequest(f"{field} must be a non-negative decimal number, got {value[:40]!r}", field)
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= MAX_PRICE:
        raise InvalidRequest(f"{field} must be a number between 0 and {MAX_PRICE:.0e}, got {value!r}", field)
    return float(value)


def _check_flag(value: Any, field: str) -> bool:
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    if isinstance(value, bool):
        return value
    raise InvalidRequest(f"{field} must be true or false, got {str(value)[:40]!r}", field)


def _filter_of(categories: tuple[str, ...], exclude: tuple[str, ...], fields: Mapping[str, Any],
               query: str | None = None) -> ItemFilter:
    min_price = _check_price(fields["min_price"], "min_price") if "min_price" in fields else None
    max_price = _check_price(fields["max_price"], "max_price") if "max_price" in fields else None
    if min_price is not None and max_price is not None and min_price > max_price:
        raise InvalidRequest(f"min_price ({min_price:g}) is above max_price ({max_price:g})", "min_price")
    available_only = _check_flag(fields["available_only"], "available_only") if "available_only" in fields else True
    return ItemFilter(categories=categories, exclude=exclude, available_only=available_only,
                      min_price=min_price, max_price=max_price, query=query)


def parse_filter_query(query_params: Mapping[str, str] | None) -> tuple[ItemFilter, bool]:
    """The filter and ``explain`` flag of a read route's query (see ``FILTER_QUERY``).

    ``category`` and ``exclude`` take several values separated by commas.
    Which parameters a route accepts is checked before its view runs.
    """
    params = query_params or {}
    categories = _check_categories(params["category"].split(","), "category") if "category" in params else ()
    exclude: tuple[str, ...] = ()
    if "exclude" in params:
        exclude = tuple(check_id_list(params["exclude"].split(","), "exclude", MAX_EXCLUDED))
    explain = _check_flag(params["explain"], "explain") if "explain" in params else False
    return _filter_of(categories, exclude, params), explain


def parse_audience_query(query_params: Mapping[str, str] | None) -> tuple[int, bool]:
    """``n`` (1 to ``MAX_AUDIENCE``, default ``DEFAULT_AUDIENCE``) and ``include_engaged`` (default false)
    of an audience route."""
    params = query_params or {}
    n = check_count(params["n"], from_query=True, maximum=MAX_AUDIENCE) if "n" in params else DEFAULT_AUDIENCE
    include_engaged = _check_flag(params["include_engaged"], "include_engaged") if "include_engaged" in params \
        else False
    return n, include_engaged


def parse_category_query(query_params: Mapping[str, str] | None) -> str:
    """The one ``category`` a route requires (a name, not a list: commas are part of it)."""
    params = query_params or {}
    if "category" not in params:
        raise InvalidRequest("category is required: the catalog category whose audience to find", "category")
    return _check_categories([params["category"]], "category")[0]


#: Bounds of the insight listings' pages.
MAX_INSIGHTS_PAGE = 100
DEFAULT_INSIGHTS_PAGE = 20
#: What the insight listings accept in their query strings (``category`` only for items).
INSIGHTS_QUERY = ("window", "source", "sort", "order", "limit", "cursor")


def _one_of(params: Mapping[str, str], field: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    if field not in params:
        return default
    value = params[field]
    if value not in allowed:
        raise InvalidRequest(f"{field} must be one of {', '.join(allowed)}, got {value[:40]!r}", field)
    return value


def parse_insights_query(query_params: Mapping[str, str] | None) -> InsightsQuery:
    """``window``, ``source``, ``category``, ``sort``, ``order``, ``limit`` and ``cursor`` of an insight listing."""
    params = query_params or {}
    category = _check_categories([params["category"]], "category")[0] if "category" in params else None
    limit = check_count(params["limit"], "limit", from_query=True, maximum=MAX_INSIGHTS_PAGE) if "limit" in params \
        else DEFAULT_INSIGHTS_PAGE
    query = InsightsQuery(window=_one_of(params, "window", tuple(WINDOWS), "7d"),
                          source=_one_of(params, "source", SOURCES, None), category=category,
                          sort=_one_of(params, "sort", SORTS, "views"),
                          order=_one_of(params, "order", ("desc", "asc"), "desc"), limit=limit)
    if query.source is not None and query.sort == "distinct_users":
        raise InvalidRequest("distinct users are counted over every source: sort=distinct_users takes no source",
                             "sort")
    if "cursor" in params:
        return replace(query, offset=read_cursor(params["cursor"], query))
    return query


def parse_trending_query(query_params: Mapping[str, str] | None) -> tuple[int, str | None]:
    """``n`` and the optional single ``category`` of ``GET /trending``."""
    params = query_params or {}
    category = _check_categories([params["category"]], "category")[0] if "category" in params else None
    return parse_count_query(params), category


def parse_filter_fields(body: Mapping[str, Any], query: str | None = None) -> ItemFilter:
    """The filter given by the fields of a JSON request body (``category`` a string or a list)."""
    categories: tuple[str, ...] = ()
    if "category" in body:
        value = body["category"]
        categories = _check_categories(value if isinstance(value, list) else [value], "category")
    exclude = tuple(check_id_list(body["exclude"], "exclude", MAX_EXCLUDED, required=False)) \
        if "exclude" in body else ()
    return _filter_of(categories, exclude, body, query)


def _refuse_unknown_fields(body: Mapping[str, Any], accepted: frozenset[str]) -> None:
    unknown = sorted(set(body) - accepted)
    if unknown:
        raise InvalidRequest(f"unknown field {unknown[0][:60]!r}; accepted: {', '.join(sorted(accepted))}",
                             unknown[0])


def parse_session_request(raw_body: bytes | str | None) -> tuple[list[str], int, ItemFilter, bool]:
    """Parse ``{"item_ids": [...], "n": 10, <filter fields>, "explain": false}`` of ``POST /recommendations``.

    Returns
    -------
    (item_ids, n, item_filter, explain)
    """
    body = parse_json_object(raw_body)
    _refuse_unknown_fields(body, _FILTER_FIELDS | {"item_ids", "n"})
    if "item_ids" not in body:
        raise InvalidRequest("item_ids is required", "item_ids")
    checked = check_id_list(body["item_ids"], "item_ids", MAX_SESSION_ITEMS, required=False)
    # A digit string is still taken here, as it always was (clients rely on it); newer routes take integers only.
    n = check_count(body["n"], from_query=True) if "n" in body else DEFAULT_RESULTS
    explain = _check_flag(body["explain"], "explain") if "explain" in body else False
    return checked, n, parse_filter_fields(body), explain


def parse_rank_request(raw_body: bytes | str | None) -> tuple[list[str], str | None, list[str] | None]:
    """Parse ``POST /rank``: ``item_ids`` (the candidates) and ``user_id`` or ``session_item_ids``.

    Returns
    -------
    (candidate ids, user_id or None, session item ids or None)
    """
    body = parse_json_object(raw_body)
    _refuse_unknown_fields(body, frozenset({"item_ids", "user_id", "session_item_ids"}))
    if "item_ids" not in body:
        raise InvalidRequest("item_ids is required: the candidates to rank", "item_ids")
    candidates = check_id_list(body["item_ids"], "item_ids", MAX_RANK_CANDIDATES)
    if ("user_id" in body) == ("session_item_ids" in body):
        raise InvalidRequest("give either user_id or session_item_ids (not both): whom to rank for", "user_id")
    if "user_id" in body:
        return candidates, check_id(body["user_id"], "user_id", MAX_USER_ID_BYTES), None
    return candidates, None, check_id_list(body["session_item_ids"], "session_item_ids", MAX_SESSION_ITEMS,
                                           required=False)


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


#: Bounds of ``POST /chat/suggestions`` (as its JSON Schema, ``schemas/chat_suggestions.json``, states them).
MAX_CHAT_MENTIONS = 50
MAX_CHAT_RESULTS = 10
DEFAULT_CHAT_RESULTS = 3
MAX_QUERY_LENGTH = 200
_CHAT_FIELDS = frozenset({"user_id", "liked_item_ids", "disliked_item_ids", "query", "category", "max_price",
                          "exclude", "n"})


def parse_chat_request(raw_body: bytes | str | None) -> ChatRequest:
    """Parse ``POST /chat/suggestions`` (see its JSON Schema); every field is optional."""
    body = parse_json_object(raw_body)
    _refuse_unknown_fields(body, _CHAT_FIELDS)
    user_id = check_id(body["user_id"], "user_id", MAX_USER_ID_BYTES) if "user_id" in body else None
    liked = check_id_list(body.get("liked_item_ids", []), "liked_item_ids", MAX_CHAT_MENTIONS, required=False)
    disliked = check_id_list(body.get("disliked_item_ids", []), "disliked_item_ids", MAX_CHAT_MENTIONS,
                             required=False)
    query = None
    if "query" in body:
        query = body["query"]
        if not isinstance(query, str) or not query.strip() or len(query) > MAX_QUERY_LENGTH:
            raise InvalidRequest(f"query must be a non-empty string of at most {MAX_QUERY_LENGTH} characters", "query")
        if not words_of(query):
            raise InvalidRequest("query holds no word (letters or digits) to search for", "query")
        query = " ".join(query.split())
    n = DEFAULT_CHAT_RESULTS
    if "n" in body:
        n = check_count(body["n"])
        if n > MAX_CHAT_RESULTS:
            raise InvalidRequest(f"n must be between 1 and {MAX_CHAT_RESULTS} for chat suggestions, got {n}", "n")
    item_filter = parse_filter_fields(body, query)
    return ChatRequest(user_id, tuple(liked), tuple(disliked), item_filter, n)
