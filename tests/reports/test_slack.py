"""The weekly summary as a Slack message within Slack's limits, and posting it to a local webhook."""

from __future__ import annotations

import json
import logging

import pytest

from chalicelib.errors import WebhookRejected, WebhookUnavailable
from chalicelib.reports.slack import (
    MAX_BLOCKS,
    MAX_HEADER_TEXT,
    MAX_SECTION_TEXT,
    fit_lines,
    post_to_webhook,
    retry_wait,
    slack_payload,
)
from chalicelib.reports.weekly import TrendingRow
from tests.reports.test_weekly import hand_built_summary
from tests.support import WebhookReceiver, closed_port_url, content_row, silent_endpoint

#: Quick retries for tests: the waits are tiny, the logic the same.
FAST = {"timeout": 2.0, "backoff_seconds": 0.01, "max_wait_seconds": 0.05}


def texts(payload: dict) -> list[str]:
    """Every mrkdwn or plain text of the message's blocks."""
    found = []
    for block in payload["blocks"]:
        if "text" in block:
            found.append(block["text"]["text"])
        found += [element["text"] for element in block.get("elements", [])]
    return found


def check_limits(payload: dict) -> None:
    assert len(payload["blocks"]) <= MAX_BLOCKS
    for block in payload["blocks"]:
        if block["type"] == "section":
            assert 0 < len(block["text"]["text"]) <= MAX_SECTION_TEXT
        if block["type"] == "header":
            assert len(block["text"]["text"]) <= MAX_HEADER_TEXT
    assert payload["text"] and len(payload["text"]) <= 3000
    json.dumps(payload)


def test_the_message_names_every_section_and_links_the_report():
    payload = slack_payload(hand_built_summary(), "s3://bucket/insights/insights-2026-03-02.md")

    check_limits(payload)
    text = "\n".join(texts(payload))
    assert payload["blocks"][0] == {"type": "header", "text": {"type": "plain_text", "text": "Weekly insights, 2026-03-02"}}
    assert "1. *Star Wars | A New Hope*: 12,345 views (+23%), CTR 10.0%, conversion 0.3%" in text
    assert "*Fargo*: 30 views, 120 before (-75%)" in text
    assert "*Toy Story*: score 3.25 (Animation, Comedy)" in text
    assert "*Sci-Fi*: conversion 3.2% (64 purchases of 2,000 views)" in text
    assert "nDCG@10 0.1867 (popularity 0.1084), MAP@10 0.0529 (popularity 0.0301)" in text
    assert "Full report: `s3://bucket/insights/insights-2026-03-02.md`" in text
    assert payload["text"] == "Weekly insights, 2026-03-02, most viewed: Star Wars | A New Hope (12,345 views), " \
                              "live model nDCG@10 0.1867"


def test_an_https_report_is_a_link_and_none_is_left_out():
    linked = slack_payload(hand_built_summary(), "https://example.com/r.md")
    assert "Full report: <https://example.com/r.md|insights-2026-03-02.md>" in texts(linked)

    assert not any("Full report" in text for text in texts(slack_payload(hand_built_summary(), None)))


def test_200_long_titles_stay_within_slacks_limits():
    rows = tuple(content_row(f"item-{n}", 10_000 - n, 20_000, title=f"<!channel> {n} & " + "very long title " * 40)
                 for n in range(200))
    trending = tuple(TrendingRow(f"t{n}", "T" * 5000, ("C" * 3000,), 1.0, 1.0, 1.0) for n in range(200))
    summary = hand_built_summary(top_items=rows, falling_items=rows, best_categories=rows, trending=trending)

    payload = slack_payload(summary, "s3://bucket/insights/" + "x" * 4000)

    check_limits(payload)
    text = "\n".join(texts(payload))
    assert "…and 190 more in the full report" in text
    assert "<!channel>" not in text and "&lt;!channel&gt; 0 &amp; very long" in text  # no one is pinged


def test_lines_are_cut_at_a_line_saying_how_many_were_left_out():
    assert fit_lines(["a" * 10, "b" * 10], 21) == "a" * 10 + "\n" + "b" * 10
    assert fit_lines(["a" * 10, "b" * 10, "c" * 10], 30) == "a" * 10 + "\n…and 2 more lines"
    assert fit_lines(["x" * 50], 20) == "x" * 19 + "…"


def test_waits_follow_retry_after_or_back_off_never_past_the_cap():
    assert retry_wait(1, 3.0, 1.0, 30.0) == 3.0
    assert retry_wait(1, 3600.0, 1.0, 30.0) == 30.0
    assert retry_wait(1, -5.0, 1.0, 30.0) == 0.0
    for attempt in (1, 2, 3, 10):
        assert 0.0 <= retry_wait(attempt, None, 1.0, 30.0) <= min(30.0, 2 ** (attempt - 1))


# --- posting -----------------------------------------------------------------------------------------------


def test_the_payload_arrives_as_json(caplog):
    payload = slack_payload(hand_built_summary(), None)

    with WebhookReceiver() as receiver, caplog.at_level(logging.INFO, logger="chalicelib.reports"):
        post_to_webhook(receiver.url, payload, **FAST)

    [(content_type, body)] = receiver.requests
    assert content_type == "application/json; charset=utf-8"
    assert json.loads(body) == payload
    assert "secret-token" not in caplog.text and "127.0.0.1" in caplog.text  # the host, never the URL


def test_a_500_and_a_429_are_retried_then_it_succeeds(caplog):
    answers = [(500, "oops", {}), (429, "slow down", {"Retry-After": "0"}), (200, "ok", {})]

    with WebhookReceiver(answers) as receiver, caplog.at_level(logging.WARNING, logger="chalicelib.reports"):
        post_to_webhook(receiver.url, {"text": "hi"}, **FAST)

    assert [json.loads(body) for _, body in receiver.requests] == [{"text": "hi"}] * 3
    assert "HTTP 500 oops" in caplog.text and "HTTP 429 slow down" in caplog.text
    assert "secret-token" not in caplog.text


def test_a_400_is_not_retried_and_carries_the_webhooks_answer():
    with WebhookReceiver([(400, "invalid_blocks", {})]) as receiver:
        with pytest.raises(WebhookRejected, match="HTTP 400: invalid_blocks") as caught:
            post_to_webhook(receiver.url, {"text": "hi"}, **FAST)

    assert len(receiver.requests) == 1
    assert "secret-token" not in str(caught.value) and "127.0.0.1" in str(caught.value)


def test_a_webhook_failing_every_time_gives_up_after_the_attempts():
    with WebhookReceiver([(503, "down", {})]) as receiver:
        with pytest.raises(WebhookUnavailable, match="in 3 attempts: HTTP 503 down"):
            post_to_webhook(receiver.url, {"text": "hi"}, attempts=3, **FAST)

    assert len(receiver.requests) == 3


def test_a_silent_webhook_times_out_and_a_closed_port_is_retried():
    with silent_endpoint() as (url, _):
        with pytest.raises(WebhookUnavailable, match="in 2 attempts"):
            post_to_webhook(url + "/hook", {"text": "hi"}, attempts=2, **{**FAST, "timeout": 0.2})

    with pytest.raises(WebhookUnavailable, match="in 2 attempts: URLError"):
        post_to_webhook(closed_port_url() + "/hook", {"text": "hi"}, attempts=2, **FAST)
