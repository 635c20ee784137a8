"""Suggestions for a chatbot: a few items that fit a conversation, and a reply ready to send.

What the conversation said (liked and disliked items) is folded in like
recent events: liked items pull similar ones up, disliked ones push them
down, and neither is suggested. A free-text query narrows the candidates to
the items matching every word. When nothing passes, the reply says so and
offers popular items instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from chalicelib.catalog.index import words_of
from chalicelib.serving.filters import ItemFilter

#: What a suggestion shows of an item: enough for a chat message and a link.
SUGGESTION_FIELDS = ("item_id", "title", "url", "image_url", "price", "reason", "score")


@dataclass(frozen=True)
class ChatRequest:
    """A validated ``POST /chat/suggestions`` request."""

    user_id: str | None
    liked_item_ids: tuple[str, ...]
    disliked_item_ids: tuple[str, ...]
    item_filter: ItemFilter
    n: int

    def candidates_filter(self) -> ItemFilter:
        """The request's filter, with what the conversation mentioned excluded."""
        mentioned = (*self.item_filter.exclude, *self.liked_item_ids, *self.disliked_item_ids)
        return replace(self.item_filter, exclude=tuple(dict.fromkeys(mentioned)))

    def fallback_filter(self) -> ItemFilter:
        """What popular suggestions keep when nothing matches: exclusions and availability only."""
        return ItemFilter(exclude=self.candidates_filter().exclude)


def _price(entry: dict[str, Any]) -> str:
    price = entry.get("price")
    return f" ({price['amount']:g} {price['currency']})" if price else ""


def _name(entry: dict[str, Any]) -> str:
    return entry.get("title") or f"item {entry['item_id']}"


def _constraints(request: ChatRequest) -> str:
    parts = []
    if request.item_filter.query:
        parts.append(f"matching \u201c{request.item_filter.query}\u201d")
    if request.item_filter.categories:
        parts.append(f"in {' or '.join(request.item_filter.categories)}")
    if request.item_filter.max_price is not None:
        parts.append(f"at {request.item_filter.max_price:g} or less")
    return " ".join(parts)


def chat_reply(request: ChatRequest, suggestions: list[dict[str, Any]], matched: bool) -> str:
    """The plain-text reply listing *suggestions*; *matched* False when they are the popular fallback."""
    lines = [f"{number}. {_name(entry)}{_price(entry)} \u2014 {entry['reason']}"
             for number, entry in enumerate(suggestions, start=1)]
    wanted = _constraints(request)
    if not matched:
        opening = f"I found nothing {wanted}." if wanted else "I found nothing new to suggest."
        if not suggestions:
            return opening
        return "\n".join([f"{opening} Popular picks instead:", *lines])
    if len(suggestions) == 1:
        return "\n".join([f"Here is one suggestion{' ' + wanted if wanted else ''}:", *lines])
    return "\n".join([f"Here are {len(suggestions)} suggestions{' ' + wanted if wanted else ''}:", *lines])


#: Words of a chat query asking what is trending: "trending", or "popular"/"hot" with "now"/"today".
_TREND_WORDS = frozenset({"trending", "trend", "trends"})
_POPULAR_WORDS = frozenset({"popular", "hot"})
_NOW_WORDS = frozenset({"now", "today", "currently"})


def asks_for_trends(query: str | None) -> bool:
    """Whether a chat *query* asks what is trending ("trending", "popular now", "hot today")."""
    if not query:
        return False
    words = set(words_of(query))
    return bool(words & _TREND_WORDS) or (bool(words & _POPULAR_WORDS) and bool(words & _NOW_WORDS))


def trending_reply(label: str, suggestions: list[dict[str, Any]]) -> str:
    """The reply listing trending *suggestions* under *label* ("Trending in Comedy today")."""
    lines = [f"{number}. {_name(entry)}{_price(entry)}" for number, entry in enumerate(suggestions, start=1)]
    return "\n".join([f"{label}:", *lines])


def as_suggestions(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The items of a presented answer, cut down to what a chat shows."""
    return [{name: entry[name] for name in SUGGESTION_FIELDS if name in entry} for entry in body["items"]]
