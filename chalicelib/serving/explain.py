"""Reasons in plain words for each recommended item (``explain=true``).

A personalised item is explained by the person's own history items that add
most to its score (the exact decomposition of the fold-in score, see
:meth:`Recommender.contributors`), named by their catalog titles: "Because
you watched Toy Story and Aladdin". Other answers explain themselves:
"Similar to Star Wars", "Popular in Comedy", "Because you just viewed …".
Blocked items are never named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from chalicelib.catalog.index import fold_text
from chalicelib.catalog.item import CatalogItem
from chalicelib.serving.recommender import Profile, Recommendations, Recommender

#: History items named per reason, and how many are looked at to find them (some have no title).
NAMED_PER_REASON = 2
_CANDIDATES_PER_REASON = 4


@dataclass(frozen=True)
class ExplainContext:
    """What the reasons of one answer depend on besides the answer itself.

    Parameters
    ----------
    recommender: the model the answer came from.
    history_verb: the verb of "Because you <verb> …" (``EXPLAIN_HISTORY_VERB``).
    categories: the request's category filter ("Popular in Comedy").
    similar_to: the item of a "more like this" answer.
    hidden: item ids never to name (blocked).
    liked_in_conversation: items a chat conversation said the person likes.
    query: the keywords of a chat request.
    """

    recommender: Recommender
    history_verb: str
    categories: tuple[str, ...] = ()
    similar_to: str | None = None
    hidden: frozenset[str] = field(default_factory=frozenset)
    #: Items a chat conversation said the person likes ("Because you liked …").
    liked_in_conversation: frozenset[str] = field(default_factory=frozenset)
    #: The keywords of a chat request: what an item otherwise unexplained was chosen for.
    query: str | None = None


def contributors(recommender: Recommender, profile: Profile, item_ids: list[str], limit: int,
                 hidden: frozenset[str] | set[str] = frozenset()) -> dict[str, list[str]]:
    """For each of *item_ids*, the history items that add most to its score, most first.

    At most *limit* per item, only those adding a positive amount, never one
    of *hidden* (blocked items); empty for a profile without history.
    """
    history_ids, contributions = recommender.score_contributions(profile, item_ids)
    answer: dict[str, list[str]] = {}
    for column, item_id in enumerate(item_ids):
        chosen: list[str] = []
        for position in np.argsort(-contributions[:, column], kind="stable"):
            if contributions[position, column] <= 0 or len(chosen) == limit:
                break
            if history_ids[position] not in hidden:
                chosen.append(history_ids[position])
        answer[item_id] = chosen
    return answer


def _listed(titles: list[str]) -> str:
    return titles[0] if len(titles) == 1 else f"{', '.join(titles[:-1])} and {titles[-1]}"


class Explainer:
    """Reasons for the items of one answer, in two steps around the answer's one catalog read."""

    def __init__(self, answer: Recommendations, context: ExplainContext) -> None:
        self._answer = answer
        self._context = context
        profile = answer.profile
        if profile is not None and profile.vector is not None:
            self._contributors = contributors(context.recommender, profile, answer.item_ids, _CANDIDATES_PER_REASON,
                                              hidden=context.hidden)
        else:
            self._contributors = {}

    def items_to_describe(self) -> list[str]:
        """The items whose titles the reasons may need: the history items named, the similar item."""
        named = [item_id for ids in self._contributors.values() for item_id in ids]
        if self._context.similar_to is not None:
            named.append(self._context.similar_to)
        return list(dict.fromkeys(named))

    def reasons(self, described: dict[str, CatalogItem]) -> dict[str, str]:
        """item id -> its reason, given the catalog items read for the answer."""
        return {item_id: self._reason(item_id, described) for item_id in self._answer.item_ids}

    def _title(self, item_id: str, described: dict[str, CatalogItem]) -> str | None:
        item = described.get(item_id)
        if item is None or item.blocked or item_id in self._context.hidden:
            return None
        return item.title

    def _reason(self, item_id: str, described: dict[str, CatalogItem]) -> str:
        strategy = self._answer.strategy.removesuffix("_model_only")
        if strategy == "similar":
            source = self._context.similar_to
            return f"Similar to {self._title(source, described) or source}" if source else "Similar items"
        if strategy == "popular":
            return self._popular_reason(described.get(item_id))
        named = [(history_id, title) for history_id, title in
                 ((history_id, self._title(history_id, described))
                  for history_id in self._contributors.get(item_id, [])) if title is not None]
        if not named:
            if self._context.query:
                return f"Matches \u201c{self._context.query}\u201d"
            return "Goes with what you just viewed" if strategy == "session" else "Picked for you"
        if strategy == "session":
            return f"Because you just viewed {_listed([title for _, title in named][:NAMED_PER_REASON])}"
        # One verb per reason: the strongest contributor says whether it is "liked" (in the chat) or history.
        liked = self._context.liked_in_conversation
        in_chat = named[0][0] in liked
        titles = [title for history_id, title in named if (history_id in liked) == in_chat][:NAMED_PER_REASON]
        verb = "liked" if in_chat else self._context.history_verb
        return f"Because you {verb} {_listed(titles)}"

    def _popular_reason(self, item: CatalogItem | None) -> str:
        if item is not None and self._context.categories:
            wanted = {fold_text(category) for category in self._context.categories}
            for category in item.categories:
                if fold_text(category) in wanted:
                    return f"Popular in {category}"
        if self._context.query:
            return f"Matches \u201c{self._context.query}\u201d, among the most popular"
        return "Among the most popular"
