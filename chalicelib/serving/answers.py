"""Every read route's answer in one call: the model's ranking, the business rules, the catalog and the reasons.

:class:`Answers` is what ``chalicelib/api`` calls: it asks the live model
(through the :class:`Personalizer` for users), applies the request's
:class:`ItemFilter` before the top-N cut, and presents the result with
catalog fields and, on request, reasons.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import numpy as np

from chalicelib.catalog.cache import CatalogCache
from chalicelib.errors import InvalidRequest
from chalicelib.serving.chat import ChatRequest, as_suggestions, asks_for_trends, chat_reply, trending_reply
from chalicelib.serving.explain import ExplainContext
from chalicelib.serving.filters import ItemFilter, ItemFilters
from chalicelib.serving.live_model import LiveModel
from chalicelib.serving.personalizer import Personalizer
from chalicelib.serving.presenter import present
from chalicelib.serving.recommender import Profile, Recommendations, Recommender

#: (n, category or None, item ids to leave out) -> the items trending now (chalicelib.insights.trending).
TrendingSource = Callable[[int, "str | None", tuple[str, ...]], Recommendations]


class Answers:
    """The answers of the read routes.

    Parameters
    ----------
    live_model: the model being served.
    personalizer: users' profiles, with their recent events.
    filters: the business rules, from the catalog index.
    catalog: catalog items for answers (titles, links, prices).
    history_verb: the verb of "Because you <verb> …".
    like_weight, dislike_weight: what a like and a dislike said in a chat weigh (as those events).
    trending: the items trending now, for a chat that asks for them (None: chats never offer trends).
    """

    def __init__(self, live_model: LiveModel, personalizer: Personalizer, filters: ItemFilters,
                 catalog: CatalogCache, history_verb: str, like_weight: float, dislike_weight: float,
                 trending: TrendingSource | None = None) -> None:
        self._trending = trending
        self._live_model = live_model
        self._personalizer = personalizer
        self._filters = filters
        self._catalog = catalog
        self._history_verb = history_verb
        self._like_weight = like_weight
        self._dislike_weight = dislike_weight

    def _context(self, recommender: Recommender, explain: bool, item_filter: ItemFilter,
                 profile: Profile | None = None, similar_to: str | None = None,
                 liked: tuple[str, ...] = ()) -> ExplainContext | None:
        if not explain:
            return None
        hidden: frozenset[str] = frozenset()
        blocked = self._filters.blocked_mask(recommender)
        if blocked is not None and profile is not None and profile.history_rows.size:
            rows = np.unique(profile.history_rows)
            hidden = frozenset(recommender.item_ids_of(rows[blocked[rows]]))
        return ExplainContext(recommender, self._history_verb, item_filter.categories, similar_to, hidden,
                              frozenset(liked), item_filter.query)

    def for_user(self, user_id: str, n: int, item_filter: ItemFilter, explain: bool) -> dict[str, Any]:
        """``GET /users/{user_id}/recommendations``."""
        recommender = self._live_model.recommender()
        allowed = self._filters.allowed(recommender, item_filter)
        profile = self._personalizer.profile(recommender, user_id)
        answer = recommender.recommend(profile, n, allowed)
        return present(answer, self._catalog, self._context(recommender, explain, item_filter, profile),
                       user_id=user_id)

    def similar(self, item_id: str, n: int, item_filter: ItemFilter, explain: bool) -> dict[str, Any]:
        """``GET /items/{item_id}/similar``."""
        recommender = self._live_model.recommender()
        allowed = self._filters.allowed(recommender, item_filter)
        answer = recommender.similar_items(item_id, n, allowed)
        return present(answer, self._catalog, self._context(recommender, explain, item_filter, similar_to=item_id),
                       item_id=item_id)

    def popular(self, n: int, item_filter: ItemFilter, explain: bool) -> dict[str, Any]:
        """``GET /popular``."""
        recommender = self._live_model.recommender()
        answer = recommender.popular(n, allowed=self._filters.allowed(recommender, item_filter))
        return present(answer, self._catalog, self._context(recommender, explain, item_filter))

    def for_session(self, item_ids: list[str], n: int, item_filter: ItemFilter, explain: bool) -> dict[str, Any]:
        """``POST /recommendations``: an anonymous visitor who just saw *item_ids*."""
        recommender = self._live_model.recommender()
        allowed = self._filters.allowed(recommender, item_filter)
        profile = recommender.profile_for_session(item_ids)
        answer = recommender.recommend(profile, n, allowed)
        return present(answer, self._catalog, self._context(recommender, explain, item_filter, profile))

    def rank(self, candidate_ids: list[str], user_id: str | None, session_item_ids: list[str] | None
             ) -> dict[str, Any]:
        """``POST /rank``: the caller's candidates in order of predicted preference.

        Candidates the model does not know are listed in ``unknown_item_ids``,
        blocked ones in ``blocked_item_ids``: none is dropped silently.
        """
        recommender = self._live_model.recommender()
        if user_id is not None:
            profile = self._personalizer.profile(recommender, user_id)
        elif session_item_ids is not None:
            profile = recommender.profile_for_session(session_item_ids)
        else:
            raise InvalidRequest("give user_id or session_item_ids: whom to rank the candidates for", "user_id")
        ranking = recommender.rank(profile, candidate_ids)
        blocked = self._blocked(recommender, ranking.item_ids)
        head = {"user_id": user_id} if user_id is not None else {}
        return head | {
            "model_version": ranking.model_version,
            "strategy": ranking.strategy,
            "items": [{"item_id": item_id, "score": round(score, 6)}
                      for item_id, score in zip(ranking.item_ids, ranking.scores, strict=True)
                      if item_id not in blocked],
            "unknown_item_ids": ranking.unknown_item_ids,
            "blocked_item_ids": [item_id for item_id in ranking.item_ids if item_id in blocked],
        }

    def _blocked(self, recommender: Recommender, item_ids: list[str]) -> set[str]:
        """Those of *item_ids* blocked by the filter index or by the answer's own catalog read."""
        mask = self._filters.blocked_mask(recommender)
        blocked = {item_id for item_id in item_ids if mask[recommender.item_row(item_id)]} if mask is not None else set()
        return blocked | {item_id for item_id, item in self._catalog.items(item_ids).items() if item.blocked}

    def chat(self, request: ChatRequest) -> dict[str, Any]:
        """``POST /chat/suggestions``: a few items for a conversation, and a reply listing them.

        A query asking what is trending (or popular now, hot today) is answered with the items
        trending now, in the request's first category if it names one, when any is trending.
        """
        if self._trending is not None and asks_for_trends(request.item_filter.query):
            trending = self._trending_chat(request)
            if trending is not None:
                return trending
        recommender = self._live_model.recommender()
        mentioned = [*request.liked_item_ids, *request.disliked_item_ids]
        weights = [self._like_weight] * len(request.liked_item_ids) + \
            [self._dislike_weight] * len(request.disliked_item_ids)
        if request.user_id is not None:
            profile = self._personalizer.profile(recommender, request.user_id, mentioned, weights)
        else:
            profile = recommender.profile_for_user("", mentioned, weights, use_trained=False)
            if profile.vector is not None:
                profile = replace(profile, strategy="conversation")
        answer = recommender.recommend(profile, request.n, self._filters.allowed(recommender,
                                                                                 request.candidates_filter()))
        matched = bool(answer.item_ids)
        if not matched:
            fallback = self._filters.allowed(recommender, request.fallback_filter())
            answer = recommender.popular(request.n, exclude=profile.exclude, allowed=fallback)
        shown_for = request.item_filter if matched else request.fallback_filter()  # no "Matches …" for a fallback
        context = self._context(recommender, True, shown_for, profile, liked=request.liked_item_ids)
        suggestions = as_suggestions(present(answer, self._catalog, context))
        body: dict[str, Any] = {"user_id": request.user_id} if request.user_id is not None else {}
        return body | {"model_version": answer.model_version, "strategy": answer.strategy, "matched": matched,
                       "items": suggestions, "message": chat_reply(request, suggestions, matched)}

    def _trending_chat(self, request: ChatRequest) -> dict[str, Any] | None:
        category = request.item_filter.categories[0] if request.item_filter.categories else None
        answer = self._trending(request.n, category, request.candidates_filter().exclude)
        if not answer.item_ids:
            return None
        label = f"Trending in {category} today" if category else "Trending today"
        suggestions = as_suggestions(present(answer, self._catalog))
        for entry in suggestions:
            entry["reason"] = label
        body: dict[str, Any] = {"user_id": request.user_id} if request.user_id is not None else {}
        # The counters answer, not the model; the version still says which model serves the conversation.
        version = self._live_model.recommender().version
        return body | {"model_version": version, "strategy": answer.strategy, "matched": True,
                       "items": suggestions, "message": trending_reply(label, suggestions)}
