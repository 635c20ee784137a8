"""Hypothesis strategies for the property tests of our parsers and validators.

Broad on purpose: any text (lone surrogates, control and format characters,
combining marks, 4-byte characters), any JSON value, numbers at and beyond
every bound. Beside them, strategies of input that should mostly pass, so
that what validation accepts is exercised too (in DynamoDB round trips).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from chalicelib.config import DEFAULT_EVENT_WEIGHTS
from chalicelib.eventlog.rules import EVENT_SOURCES, EventRules

#: The moment and the rules the validators are checked at (the default event types, a year back).
NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
RULES = EventRules(event_types=frozenset(DEFAULT_EVENT_WEIGHTS), max_age=timedelta(days=365),
                   max_future=timedelta(minutes=5))

#: Repeatable in CI: the same examples on every run (until Hypothesis or the test changes).
PURE = settings(max_examples=300, deadline=None, derandomize=True, database=None)
#: Round trips through an emulator: fewer examples, and one table fixture for all of them.
ROUND_TRIP = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: Characters where the rules of ids have edges: whitespace, invisible and control characters,
#: a combining accent and a precomposable letter, percent-escape parts, a surrogate, an emoji.
TRICKY = ["a", "e", "\u0301", "\u212b", "%", "2", "0", "F", "f", " ", "\t", "\u00a0", "\u3000", "\u2028",
          "\u200b", "\u202e", "\ufeff", "\u00ad", "\x00", "\x7f", "\x85", "\ud800", "\udfff", "\U0001F600",
          "\ue000", "\uffff", "#", "/", "."]

any_text = st.text(st.characters(), max_size=300)
tricky_text = st.text(st.sampled_from(TRICKY), max_size=40)
#: Runs of 240 to 260 4-byte characters, every length as likely (left to itself Hypothesis favours the
#: shortest): 250 of them (1,000 bytes) are over an event id's byte limit, 257 over every id's length.
wide_text = st.integers(min_value=240, max_value=260).flatmap(
    lambda size: st.text(st.characters(min_codepoint=0x10000, max_codepoint=0x1FFFF), min_size=size, max_size=size))
texts = st.one_of(any_text, tricky_text, wide_text)

huge_integers = st.integers(min_value=-(10 ** 400), max_value=10 ** 400)
numbers = st.one_of(
    st.integers(), huge_integers, st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 1e-130, -1e-130, 9.99e-131, 1e-200, 5e-324, 1e9, 1e9 + 1, 1e308]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                           st.dictionaries(texts, inner, max_size=4)),
                           max_leaves=12)

#: Offsets datetime accepts (strictly within a day).
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59))


@st.composite
def iso_times(draw: st.DrawFn, min_value: datetime = datetime.min, max_value: datetime = datetime.max) -> str:
    """ISO-8601 text of a time anywhere in the calendar, with any offset, none, or "Z"."""
    moment = draw(st.datetimes(min_value=min_value, max_value=max_value))
    form = draw(st.sampled_from(["offset", "Z", "naive"]))
    if form == "naive":
        return moment.isoformat()
    if form == "Z":
        return moment.isoformat() + "Z"
    return moment.replace(tzinfo=timezone(draw(offsets))).isoformat()


timestamps = st.one_of(iso_times(), numbers, json_values,
                       st.sampled_from(["0001-01-01T00:00:00+05:00", "9999-12-31T23:59:59-05:00"]))

#: Ids that mostly pass: any printable character inside, NFD, interior spaces, "%" without hex digits.
plausible_ids = st.one_of(
    st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp"]), min_size=1, max_size=256),
    st.text(st.characters(exclude_categories=["Cc", "Cf", "Cs", "Zs", "Zl", "Zp"], max_codepoint=0x7F),
            min_size=1, max_size=20).map(lambda text: f"{text} {text}"),
    st.sampled_from(["Jose\u0301", "\u212b", "100%", "50%off", "a%2", "\ue000", "\uffff", "\U0010fffd"]),
    st.text(st.characters(min_codepoint=0x10000, max_codepoint=0x1FFFF), min_size=200, max_size=249),
)
plausible_values = st.one_of(
    st.just(0.0), st.just(-0.0), st.integers(min_value=-10 ** 9, max_value=10 ** 9),
    st.floats(min_value=1e-130, max_value=1e9), st.floats(min_value=-1e9, max_value=-1e-130),
)


def plausible_events(event_types: frozenset[str], now: datetime) -> st.SearchStrategy[dict]:
    """Raw events (JSON objects) that ``POST /events`` should mostly accept at *now*."""
    recent = st.datetimes(min_value=(now - timedelta(days=364)).replace(tzinfo=None),
                          max_value=(now + timedelta(minutes=4)).replace(tzinfo=None)).map(
        lambda moment: moment.replace(tzinfo=timezone.utc))
    times = st.one_of(recent.map(lambda moment: moment.timestamp()),
                      st.builds(lambda moment, shift: moment.astimezone(timezone(shift)).isoformat(), recent, offsets),
                      recent.map(lambda moment: moment.isoformat().replace("+00:00", "Z")))
    return st.fixed_dictionaries(
        {"user_id": plausible_ids, "item_id": plausible_ids, "event_type": st.sampled_from(sorted(event_types))},
        optional={"event_id": plausible_ids, "timestamp": times, "value": plausible_values,
                  "session_id": plausible_ids, "source": st.sampled_from(sorted(EVENT_SOURCES))},
    )


#: Values at the edges of what DynamoDB can hold, on both sides.
edge_values = st.sampled_from([0, 0.0, -0.0, 1e-130, -1e-130, 1.0000000000000001e-130, 9.99e-131, 1e-131, 1e-200,
                               5e-324, -5e-324, 2.2250738585072014e-308, 1e9, -1e9, 0.1, 1 / 3])
#: Ids at the edges of the rules of ids, on both sides.
edge_ids = st.one_of(tricky_text, wide_text)


def near_edge_events(event_types: frozenset[str], now: datetime) -> st.SearchStrategy[dict]:
    """Plausible events with one field at an edge (a tiny value, an id near its byte limit, an id of
    tricky characters): some pass, some do not; what passes must be storable."""
    edges = {"value": edge_values, "user_id": edge_ids, "item_id": edge_ids, "event_id": edge_ids,
             "session_id": edge_ids}
    return st.builds(lambda event, edge: {**event, **edge}, plausible_events(event_types, now),
                     st.sampled_from(sorted(edges)).flatmap(lambda name: edges[name].map(lambda v: {name: v})))


def raw_events(event_types: frozenset[str], now: datetime) -> st.SearchStrategy:
    """Anything a client could send as one event: plausible ones, plausible ones with a field
    replaced by any JSON value, or any JSON value."""
    names = ["user_id", "item_id", "event_type", "event_id", "timestamp", "value", "session_id", "source",
             "colour"]
    spoiled = st.builds(lambda event, name, value: {**event, name: value},
                        plausible_events(event_types, now), st.sampled_from(names),
                        st.one_of(json_values, timestamps, texts))
    return st.one_of(plausible_events(event_types, now), near_edge_events(event_types, now), spoiled, json_values)


def bodies(payloads: st.SearchStrategy) -> st.SearchStrategy:
    """Request bodies: *payloads* as JSON bytes or text, arbitrary bytes, or nothing."""
    as_json = payloads.map(lambda payload: json.dumps(payload))  # NaN and Infinity as Python writes them
    return st.one_of(as_json.map(str.encode), as_json, st.binary(max_size=200), st.none(),
                     st.sampled_from([b"", b"  ", b"[" * 5000 + b"]" * 5000, b'{"events": [' * 3000]))
