"""Trending now: the items whose engagement rises fastest against their own baseline.

From the same counters as content performance (no scan of the event log):

* **recent rate** ``r``: the item's weighted events in the current hour bucket and the 23 before, each
  hour weighted ``2^(-age / half_life)`` (age in hours, 0 for the current hour), as a daily rate:
  ``r = 24 * sum_h d_h w_h / sum_h d_h``. Event weights are ``EVENT_WEIGHTS`` (negative types, dislikes
  and reports, count nothing; values are not counted);
* **baseline** ``b``: its weighted events per day over the 14 day buckets before yesterday, which the
  24 hour buckets never reach, so a burst does not raise its own baseline;
* **score** ``(r + PRIOR) / (b + PRIOR)``: how many times its usual rate it runs now. The prior (a few
  weighted events a day) keeps a new item's score finite and ranks a rise from 100 to 300 a day above
  one from 0 to 3;
* an item needs at least ``TRENDING_MIN_EVENTS`` events of positive weight in those 24 hours: one
  click is not a trend.

Reads 24 hour buckets and 14 day buckets (38 Queries); the scores are kept :data:`CACHE_SECONDS` in
the warm instance, and a category's trend is the same scores filtered by the catalog.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping

import numpy as np

from chalicelib.catalog.cache import CatalogCache
from chalicelib.catalog.index import fold_text
from chalicelib.insights.counter_reader import CounterReader
from chalicelib.insights.counters import COUNT_PREFIX, ITEM, day_bucket, hour_bucket
from chalicelib.serving.presenter import present
from chalicelib.serving.recommender import Recommendations

RECENT_HOURS = 24
BASELINE_DAYS = 14
#: Weighted events per day added to both rates (see the module docstring).
PRIOR = 5.0
CACHE_SECONDS = 60.0
STRATEGY = "trending"


def trend_rates(recent: np.ndarray, baseline: np.ndarray, half_life_hours: float) -> tuple[np.ndarray, np.ndarray]:
    """Each item's recent rate ``r`` and baseline ``b``, in weighted events per day (module docstring).

    Parameters
    ----------
    recent: items x RECENT_HOURS weighted counts, column 0 the current hour.
    baseline: items x BASELINE_DAYS weighted counts.
    """
    decay = np.exp2(-np.arange(recent.shape[1]) / half_life_hours)
    return 24.0 * (recent @ decay) / decay.sum(), baseline.sum(axis=1) / baseline.shape[1]


def trend_scores(recent: np.ndarray, recent_events: np.ndarray, baseline: np.ndarray, half_life_hours: float,
                 min_events: int) -> np.ndarray:
    """The score of each item (NaN for those below the volume).

    Parameters
    ----------
    recent: items x RECENT_HOURS weighted counts, column 0 the current hour.
    recent_events: each item's events of positive weight over those hours.
    baseline: items x BASELINE_DAYS weighted counts.
    """
    rate, usual = trend_rates(recent, baseline, half_life_hours)
    scores = (rate + PRIOR) / (usual + PRIOR)
    return np.where(recent_events >= min_events, scores, np.nan)


class Trending:
    """Trending items, overall or per category.

    Parameters
    ----------
    reader: the counters.
    catalog: categories, and which items are blocked or unavailable.
    weights: event type -> weight (``EVENT_WEIGHTS``).
    half_life_hours, min_events: ``TRENDING_HALF_LIFE_HOURS`` and ``TRENDING_MIN_EVENTS``.
    clock, monotonic: now (tests pass it), and the cache's clock.
    """

    def __init__(self, reader: CounterReader, catalog: CatalogCache, weights: Mapping[str, float],
                 half_life_hours: float, min_events: int,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._reader = reader
        self._catalog = catalog
        self._weights = {f"{COUNT_PREFIX}{name}": weight for name, weight in weights.items() if weight > 0}
        self._half_life = half_life_hours
        self._min_events = min_events
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        #: (when read, current hour bucket, item ids, scores, recent rates, baselines).
        self._cached: tuple[float, str, list[str], np.ndarray, np.ndarray, np.ndarray] | None = None

    def top(self, n: int, category: str | None = None, exclude: tuple[str, ...] = (),
            now: datetime | None = None) -> Recommendations:
        """The *n* items trending most (in *category*, when given), best first; blocked and unavailable ones left out."""
        item_ids, scores = self.scores(now)
        order = np.argsort(-scores, kind="stable")
        ranked = [(item_ids[row], float(scores[row])) for row in order if not np.isnan(scores[row])
                  and item_ids[row] not in exclude]
        described = self._catalog.items([item_id for item_id, _ in ranked])
        wanted = fold_text(category) if category is not None else None
        chosen = []
        for item_id, score in ranked:
            item = described.get(item_id)
            if item is not None and (item.blocked or not item.available):
                continue
            if wanted is not None and (item is None or all(fold_text(name) != wanted for name in item.categories)):
                continue
            chosen.append((item_id, round(score, 4)))
            if len(chosen) == n:
                break
        details: dict[str, Any] = {"category": category} if category is not None else {}
        return Recommendations(None, STRATEGY, [item_id for item_id, _ in chosen], [score for _, score in chosen],
                               details)

    def answer(self, n: int, category: str | None = None) -> dict[str, Any]:
        """``GET /trending``: :meth:`top` with the items' catalog fields, as the recommendation routes answer."""
        body = present(self.top(n, category), self._catalog)
        del body["model_version"]  # no model makes this answer
        return body

    def scores(self, now: datetime | None = None) -> tuple[list[str], np.ndarray]:
        """Every item with counters in the last 24 hours, and its score (NaN: below the volume)."""
        item_ids, scores, _, _ = self.figures(now)
        return item_ids, scores

    def figures(self, now: datetime | None = None) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
        """Every item with counters in the last 24 hours: its score (NaN: below the volume), recent rate and
        baseline (weighted events per day)."""
        now = (now or self._clock()).astimezone(timezone.utc)
        hours = [hour_bucket(now - timedelta(hours=k)) for k in range(RECENT_HOURS)]
        with self._lock:
            if self._cached is not None and self._cached[1] == hours[0] \
                    and self._monotonic() - self._cached[0] < CACHE_SECONDS:
                return self._cached[2:]
        days = [day_bucket(now - timedelta(days=k)) for k in range(2, 2 + BASELINE_DAYS)]
        read = self._reader.read(hours + days, ITEM)
        item_ids = sorted({row.dimension for bucket in hours for row in read[bucket]})
        rows = {dimension: position for position, dimension in enumerate(item_ids)}
        recent = np.zeros((len(item_ids), RECENT_HOURS))
        events = np.zeros(len(item_ids))
        baseline = np.zeros((len(item_ids), BASELINE_DAYS))
        for column, bucket in enumerate(hours):
            for row in read[bucket]:
                recent[rows[row.dimension], column] = self._weighted(row.counts)
                events[rows[row.dimension]] += sum(row.counts.get(name, 0) for name in self._weights)
        for column, bucket in enumerate(days):
            for row in read[bucket]:
                if row.dimension in rows:
                    baseline[rows[row.dimension], column] = self._weighted(row.counts)
        scores = trend_scores(recent, events, baseline, self._half_life, self._min_events)
        rate, usual = trend_rates(recent, baseline, self._half_life)
        ids = [dimension[len(ITEM):] for dimension in item_ids]
        with self._lock:
            self._cached = (self._monotonic(), hours[0], ids, scores, rate, usual)
        return ids, scores, rate, usual

    def _weighted(self, counts: Mapping[str, int]) -> float:
        return float(sum(weight * counts.get(name, 0) for name, weight in self._weights.items()))
