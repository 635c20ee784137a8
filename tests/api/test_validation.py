"""The parsers of HTTP input: whatever arrives is a valid result or an InvalidRequest, nothing else."""

from __future__ import annotations

import json
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.api.validation import (
    DEFAULT_RESULTS,
    MAX_EVENTS_PER_REQUEST,
    MAX_RESULTS,
    MAX_SESSION_ITEMS,
    check_count,
    check_query,
    parse_count_query,
    parse_event_batch,
    parse_json_object,
    parse_path_id,
    parse_session_request,
)
from chalicelib.errors import InvalidRequest
from chalicelib.eventlog.item import Event
from chalicelib.eventlog.rules import check_id
from tests import strategies
from tests.strategies import NOW, PURE, RULES

#: Query strings as Chalice hands them over: names to values, the text of a number or anything.
query_values = st.one_of(st.integers(min_value=-10 ** 7, max_value=10 ** 7).map(str), strategies.texts)
query_names = st.one_of(st.sampled_from(["n", "limit", "N", " n", ""]), strategies.texts)


class MultiDict(dict):
    """Chalice's query parameters: one value per name by key, every value by ``getlist``."""

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        super().__init__(pairs)
        self._lists: dict[str, list[str]] = {}
        for name, value in pairs:
            self._lists.setdefault(name, []).append(value)

    def getlist(self, name: str) -> list[str]:
        return self._lists[name]


def refused_or(call, *args):
    """What *call* returns, or None when it refused with InvalidRequest (naming a field)."""
    try:
        return call(*args)
    except InvalidRequest as refused:
        assert refused.field is not None
        return None


@PURE
@given(st.one_of(query_values, strategies.json_values))
def test_any_count_is_refused_or_within_bounds(value):
    n = refused_or(check_count, value)
    assert n is None or (type(n) is int and 1 <= n <= MAX_RESULTS)


@PURE
@given(st.lists(st.tuples(query_names, query_values), max_size=4), st.sampled_from([(), ("n",)]))
def test_any_query_is_refused_naming_a_parameter_or_holds_only_what_the_route_accepts_once(pairs, accepted):
    params = MultiDict(pairs)
    try:
        check_query(params, accepted)
    except InvalidRequest as refused:
        assert refused.field in params
        assert refused.field not in accepted or len(params.getlist(refused.field)) > 1
        return
    assert set(params) <= set(accepted) and all(len(params.getlist(name)) == 1 for name in params)
    n = refused_or(parse_count_query, params)
    assert n is None or 1 <= n <= MAX_RESULTS
    assert "n" in params or n == DEFAULT_RESULTS


def escaped(text: str) -> str:
    """*text* percent-encoded as a path segment (a lone surrogate as the bytes UTF-8 would give it)."""
    return quote(text, safe="", errors="surrogatepass")


@PURE
@given(st.one_of(strategies.texts, strategies.texts.map(escaped), strategies.texts.map(lambda t: escaped(escaped(t)))))
def test_any_path_id_is_refused_or_an_id_read_alike_however_often_it_was_decoded(raw):
    checked = refused_or(parse_path_id, raw, "user_id")
    if checked is not None:
        assert check_id(checked, "user_id") == checked  # an id by every rule
        # What chalice local (raw) and API Gateway (decoded once) hand over name the same id.
        assert parse_path_id(escaped(checked), "user_id") == checked
        assert parse_path_id(escaped(escaped(checked)), "user_id") == checked


@PURE
@given(strategies.bodies(strategies.json_values))
def test_any_body_is_refused_or_a_json_object(raw):
    body = refused_or(parse_json_object, raw)
    assert body is None or isinstance(body, dict)


def session_payloads() -> st.SearchStrategy:
    ids = st.one_of(strategies.plausible_ids, strategies.texts, strategies.json_values)
    return st.one_of(
        st.fixed_dictionaries({"item_ids": st.lists(ids, max_size=5)},
                              optional={"n": st.one_of(st.integers(-5, 105), strategies.json_values)}),
        st.fixed_dictionaries({"item_ids": strategies.json_values}, optional={"other": strategies.json_values}),
        strategies.json_values,
    )


@PURE
@given(strategies.bodies(session_payloads()))
def test_any_session_request_is_refused_or_ids_and_a_count(raw):
    parsed = refused_or(parse_session_request, raw)
    if parsed is not None:
        item_ids, n, _, _ = parsed
        assert len(item_ids) <= MAX_SESSION_ITEMS and 1 <= n <= MAX_RESULTS
        assert all(check_id(item_id, "item_ids") == item_id for item_id in item_ids)


def event_payloads() -> st.SearchStrategy:
    event = strategies.raw_events(RULES.event_types, NOW)
    return st.one_of(
        st.fixed_dictionaries({"events": st.lists(event, max_size=4)}),
        st.fixed_dictionaries({"events": st.lists(strategies.plausible_events(RULES.event_types, NOW), max_size=4)}),
        st.fixed_dictionaries({"events": strategies.json_values}, optional={"other": strategies.json_values}),
        strategies.json_values,
    )


@PURE
@given(strategies.bodies(event_payloads()))
def test_any_event_batch_is_refused_whole_or_every_event_is_valid(raw):
    events = refused_or(parse_event_batch, raw, RULES, NOW)
    if events is not None:
        sent = json.loads(raw)["events"]
        assert 1 <= len(events) == len(sent) <= MAX_EVENTS_PER_REQUEST
        assert all(isinstance(event, Event) for event in events)
