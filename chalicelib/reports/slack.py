"""The weekly summary as a Slack incoming-webhook message, and posting it with retries.

The message is Slack's JSON (``text`` for notifications, ``blocks`` of mrkdwn
sections), kept within Slack's limits. Other chats that take Slack-compatible
webhooks (Mattermost, Rocket.Chat, Discord's ``/slack`` endpoint) read the same
JSON. The webhook's URL is its secret: only its host is ever logged or shown.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import random
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from chalicelib.errors import WebhookRejected, WebhookUnavailable
from chalicelib.reports.weekly import (
    ContentRow,
    LiveModelSummary,
    WeeklySummary,
    change_text,
    count_text,
    metric_text,
    rate_text,
    report_names,
    score_text,
    shorten,
    window_text,
)

logger = logging.getLogger(__name__)

#: Slack's limits: blocks in a message, characters in a section's text and in a header's.
MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
#: The notification text; Slack cuts ``text`` at 40,000 characters, a notification shows a line.
MAX_FALLBACK_TEXT = 300
#: Rows shown per list in the chat (the page has the whole table).
CHAT_ROWS = 10
_TITLE_CHARACTERS = 60
#: The most of a webhook's answer kept in an error message.
_ANSWER_CHARACTERS = 500


def slack_payload(summary: WeeklySummary, report_url: str | None) -> dict[str, Any]:
    """The summary as Slack incoming-webhook JSON: ``text`` plus ``blocks`` of mrkdwn sections.

    *report_url* is where the full page is (an ``https://`` link, or the
    ``s3://`` address it was published at); None leaves the line out. Every
    section's text is cut at a line to Slack's 3,000 characters, saying how many
    rows were left out, and the message holds at most 50 blocks.
    """
    day = f"{summary.generated_at:%Y-%m-%d}"
    period = window_text(summary.window)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": shorten(f"Weekly insights, {day}", MAX_HEADER_TEXT)}},
        _section([f"The {period} to {summary.generated_at:%Y-%m-%d %H:%M %Z}".rstrip()
                  + f", compared with the {period} before."]),
        _section(["*Live model*", *_live_model_lines(summary.live_model)]),
        {"type": "divider"},
        _section(["*Top items by views*", *_numbered(
            [f"{_item(row.key, row.title)}: {count_text(row.views)} views ({change_text(row)}), "
             f"CTR {rate_text(row.click_through_rate)}, conversion {rate_text(row.conversion_rate)}"
             for row in summary.top_items], "No item was viewed in the window.")]),
        _section([f"*Falling items* (at least {summary.min_previous_views:,} views the window before)", *_numbered(
            [f"{_item(row.key, row.title)}: {count_text(row.views)} views, "
             f"{count_text(row.previous_views)} before ({change_text(row)})" for row in summary.falling_items],
            "No item lost views.")]),
        _section(["*Trending*", *_numbered(
            [f"{_item(row.item_id, row.title)}: score {score_text(row.score)}"
             + (f" ({_escape(', '.join(row.categories))})" if row.categories else "") for row in summary.trending],
            "Nothing is trending.")]),
        _section(["*Best categories by conversion*", *_numbered(
            [_category(row) for row in summary.best_categories],
            f"No category had {summary.min_category_views:,} views or more.")]),
    ]
    if report_url:
        page = report_names(summary.generated_at)[0]
        link = (f"<{report_url}|{page}>" if report_url.startswith(("https://", "http://"))
                else f"`{_escape(report_url)}`")
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"Full report: {link}"}]})
    return {"text": _fallback(summary, day), "blocks": blocks[:MAX_BLOCKS]}


def _escape(text: str) -> str:
    # Slack reads &, < and > as its own markup (links, mentions): escaped, a title cannot ping @channel.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _item(key: str, title: str | None) -> str:
    return f"*{_escape(shorten(title, _TITLE_CHARACTERS))}*" if title else f"`{_escape(shorten(key, 100))}`"


def _category(row: ContentRow) -> str:
    return (f"*{_escape(shorten(row.key, _TITLE_CHARACTERS))}*: conversion {rate_text(row.conversion_rate)} "
            f"({count_text(row.purchases)} purchases of {count_text(row.views)} views)")


def _numbered(lines: list[str], empty: str) -> list[str]:
    shown = [f"{rank}. {line}" for rank, line in enumerate(lines[:CHAT_ROWS], start=1)]
    if len(lines) > CHAT_ROWS:
        shown.append(f"…and {len(lines) - CHAT_ROWS} more in the full report")
    return shown or [f"_{empty}_"]


def _live_model_lines(live: LiveModelSummary | None) -> list[str]:
    if live is None:
        return ["_No model is published yet._"]
    engine = " / ".join(part for part in (live.algorithm, live.engine) if part) or "unknown engine"
    return [f"`{live.version}` ({_escape(engine)}), trained {live.trained_at or 'at an unknown time'}"
            + (" — *forced past the quality gate*" if live.forced else ""),
            f"nDCG@{live.k} {metric_text(live.ndcg_at_k)} (popularity {metric_text(live.popularity_ndcg_at_k)}), "
            f"MAP@{live.k} {metric_text(live.map_at_k)} (popularity {metric_text(live.popularity_map_at_k)})"]


def _section(lines: list[str]) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": fit_lines(lines, MAX_SECTION_TEXT)}}


def fit_lines(lines: list[str], limit: int) -> str:
    """*lines* joined by newlines, cut at a line so that the text stays within *limit* characters.

    A line longer than the limit is itself cut; when lines are left out, the
    last line says how many.
    """
    lines = [line if len(line) <= limit else line[:limit - 1] + "…" for line in lines]
    text = "\n".join(lines)
    if len(text) <= limit:
        return text
    for keep in range(len(lines) - 1, -1, -1):  # a dozen lines: trying each cut is cheap
        text = "\n".join([*lines[:keep], f"…and {len(lines) - keep} more lines"])
        if len(text) <= limit:
            return text
    return text[:limit]


def _fallback(summary: WeeklySummary, day: str) -> str:
    parts = [f"Weekly insights, {day}"]
    if summary.top_items:
        top = summary.top_items[0]
        parts.append(f"most viewed: {shorten(top.title or top.key, _TITLE_CHARACTERS)} ({count_text(top.views)} views)")
    if summary.live_model is not None:
        parts.append(f"live model nDCG@{summary.live_model.k} {metric_text(summary.live_model.ndcg_at_k)}")
    return _escape(shorten(", ".join(parts), MAX_FALLBACK_TEXT))


# --- posting ----------------------------------------------------------------------------------------------


class _TryAgain(Exception):
    """One attempt failed in a way another may not (5xx, 429, timeout, connection error)."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def retry_wait(attempt: int, retry_after: float | None, backoff_seconds: float, max_wait_seconds: float) -> float:
    """Seconds to wait after failed attempt number *attempt* (1 for the first).

    The server's ``Retry-After`` when it sent one, else exponential backoff
    with full jitter (``uniform(0, backoff * 2^(attempt-1))``); never more than
    *max_wait_seconds*, so a server asking for an hour cannot hold the script.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), max_wait_seconds)
    return random.uniform(0.0, min(max_wait_seconds, backoff_seconds * 2 ** (attempt - 1)))


def post_to_webhook(url: str, payload: dict[str, Any], timeout: float = 10.0, attempts: int = 4,
                    backoff_seconds: float = 1.0, max_wait_seconds: float = 30.0) -> None:
    """POST *payload* as JSON to the incoming webhook at *url*, retrying what may pass.

    Parameters
    ----------
    url: the webhook's URL (a secret: only its host appears in logs and errors).
    payload: the message, e.g. from :func:`slack_payload`.
    timeout: seconds each attempt may wait to connect and for each read.
    attempts: attempts in all; 5xx, 429, timeouts and connection errors are retried.
    backoff_seconds, max_wait_seconds: see :func:`retry_wait`.

    Raises
    ------
    WebhookRejected
        On a 4xx other than 429 (or any other status that is not success), with the webhook's answer.
    WebhookUnavailable
        When every attempt failed in a way that may pass.
    """
    host = urlsplit(url).hostname or "?"
    body = json.dumps(payload).encode("utf-8")

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        return retry_wait(state.attempt_number, getattr(failure, "retry_after", None), backoff_seconds,
                          max_wait_seconds)

    def before_sleep(state: RetryCallState) -> None:
        failure = state.outcome.exception() if state.outcome else None
        logger.warning("webhook at %s: %s; attempt %d of %d again in %.1f s", host, failure,
                       state.attempt_number + 1, attempts, state.upcoming_sleep)

    retrying = Retrying(stop=stop_after_attempt(attempts), wait=wait, retry=retry_if_exception_type(_TryAgain),
                        before_sleep=before_sleep, reraise=True)
    try:
        retrying(_post_once, url, body, timeout, host)
    except _TryAgain as exc:
        raise WebhookUnavailable(f"the webhook at {host} did not take the message in {attempts} attempts: "
                                 f"{exc}") from None
    logger.info("posted %d bytes to the webhook at %s", len(body), host)


def _post_once(url: str, body: bytes, timeout: float, host: str) -> None:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json; charset=utf-8"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        answer = _answer(exc)
        if exc.code == 429 or exc.code >= 500:
            raise _TryAgain(f"HTTP {exc.code} {answer}".rstrip(), _retry_after(exc.headers.get("Retry-After"))) from None
        raise WebhookRejected(f"the webhook at {host} refused the message: HTTP {exc.code}: {answer or exc.reason}"
                              ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        # URLError holds the socket's reason (refused, timed out, name unknown), never the URL itself.
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise _TryAgain(f"{type(exc).__name__}: {reason}") from None


def _answer(error: urllib.error.HTTPError) -> str:
    try:
        text = error.read(_ANSWER_CHARACTERS * 4).decode("utf-8", "replace")
    except (OSError, http.client.HTTPException):
        return ""
    return shorten(text, _ANSWER_CHARACTERS)


def _retry_after(value: str | None) -> float | None:
    # Seconds only; the HTTP-date form is rare from webhooks and falls back to the backoff.
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        return None
    return seconds if seconds is not None and math.isfinite(seconds) else None
