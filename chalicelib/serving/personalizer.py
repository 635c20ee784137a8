"""Recommendations for a user that follow their latest events without waiting for a retrain."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace
from typing import Mapping

from chalicelib.errors import EventLogUnavailable
from chalicelib.eventlog.log import EventLog, UserHistory
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.serving.live_model import LiveModel
from chalicelib.serving.recommender import Profile, Recommendations, Recommender

logger = logging.getLogger(__name__)

#: How many erased user ids one instance remembers for when DynamoDB cannot be asked.
_ERASED_MEMORY = 10_000


class Personalizer:
    """``GET /users/{id}/recommendations``: the live model plus the user's recent events.

    Parameters
    ----------
    live_model: the model being served.
    event_log: where the user's events are read (one Query per request).
    event_weights: event type -> interaction strength, or an :class:`EventWeighting` that also
        scales an event by its value: as in training.
    history_limit: how many latest events to read; 0 turns real-time off.
    fresh_weight: what the weight of an event logged after the model's training cutoff is
        multiplied by when it is folded in with a known user's training row (1: weighed as in
        training); see :meth:`Recommender.profile_for_user`.
    """

    def __init__(
        self, live_model: LiveModel, event_log: EventLog, event_weights: Mapping[str, float] | EventWeighting,
        history_limit: int, fresh_weight: float = 1.0,
    ) -> None:
        self._live_model = live_model
        self._event_log = event_log
        self._weighting = (event_weights if isinstance(event_weights, EventWeighting)
                           else EventWeighting(dict(event_weights)))
        self._history_limit = history_limit
        self._fresh_weight = fresh_weight
        self._erased: OrderedDict[str, None] = OrderedDict()

    def recommend(self, user_id: str, n: int) -> Recommendations:
        """Top *n* items for *user_id*, without business rules; see README for the strategies."""
        recommender = self._live_model.recommender()
        return recommender.recommend(self.profile(recommender, user_id), n)

    def profile(self, recommender: Recommender, user_id: str, extra_item_ids: list[str] = (),
                extra_values: list[float] = ()) -> Profile:
        """*user_id*'s profile: trained factors plus their recent events, plus *extra* interactions.

        The extra interactions are what a conversation said (liked and
        disliked items), folded in like recent events and weighed like fresh
        ones. When the event log
        cannot be read, the profile comes from the model alone (its strategy
        ends in ``_model_only``).
        """
        if self._history_limit == 0:
            item_ids, values, use_trained = [], [], True
        else:
            try:
                history = self._event_log.recent(user_id, self._history_limit)
            except EventLogUnavailable as exc:
                logger.warning("answering from the model alone: %s", exc)
                return self._model_only(recommender, user_id, list(extra_item_ids), list(extra_values))
            if history.erased_at is not None:
                self._remember_erased(user_id)
            item_ids, values, use_trained = self._recent_interactions(recommender, user_id, history)
        return recommender.profile_for_user(user_id, [*item_ids, *extra_item_ids], [*values, *extra_values],
                                            use_trained=use_trained, fresh_weight=self._fresh_weight)

    def _recent_interactions(self, recommender: Recommender, user_id: str, history: UserHistory
                             ) -> tuple[list[str], list[float], bool]:
        use_trained = history.erased_at is None and recommender.knows_user(user_id)
        cutoff = recommender.training_cutoff
        item_ids, values = [], []
        for event in history.events:
            weight = self._weighting.weight(event.event_type, event.value)
            if not weight:
                continue  # a type dropped from the configuration since it was logged, or a value of 0
            # Events the log stored before the training scan are already in a trained
            # user's factors and training row. Judged by storage time, not event time,
            # so a late-arriving event with an old timestamp still counts.
            logged_at = event.received_at or event.timestamp
            if use_trained and cutoff is not None and logged_at <= cutoff:
                continue
            item_ids.append(event.item_id)
            values.append(weight)
        return item_ids, values, use_trained

    def _model_only(self, recommender: Recommender, user_id: str, extra_item_ids: list[str],
                    extra_values: list[float]) -> Profile:
        use_trained = user_id not in self._erased
        profile = recommender.profile_for_user(user_id, extra_item_ids, extra_values, use_trained=use_trained,
                                               fresh_weight=self._fresh_weight)
        return replace(profile, strategy=f"{profile.strategy}_model_only")

    def _remember_erased(self, user_id: str) -> None:
        self._erased[user_id] = None
        self._erased.move_to_end(user_id)
        while len(self._erased) > _ERASED_MEMORY:
            self._erased.popitem(last=False)
