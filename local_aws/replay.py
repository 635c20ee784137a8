"""The demo's recent activity: a slice of the MovieLens sample replayed as shop events of the last 28 days.

The sample's ratings are from 1997-98, older than the insight counters' horizon, so on their own they
leave ``/insights/*`` and ``/trending`` empty. :func:`replay_events` takes a seeded random slice of the
sample's last 28 days of ratings and moves it, as one block, to the 28 days ending now (the gaps and
daily rhythm of the real ratings are kept). Each rating becomes shop events of the same user and movie:

* always a ``view``; then a ``click``, an ``add_to_cart`` and a ``purchase``, each only after the one
  before and more likely the more stars the rating had (:data:`FUNNEL`);
* one source per rating, drawn from :data:`SOURCES` (web, app, chatbot, email).

:func:`burst_events` adds a deliberate burst: :data:`BURST_ITEMS` movies of :data:`BURST_CATEGORY`
viewed (and some clicked, carted, bought) by many users in the last :data:`BURST_HOURS` hours, so
something trends. Everything is drawn from a seeded generator: the same sample, seed and day give the
same events with the same ids (``demo-replay-…``, ``demo-burst-<day>-…``), so writing them again
stores nothing new.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from chalicelib.catalog.formats import movielens_100k_items
from chalicelib.eventlog.item import Event
from chalicelib.training.sources.movielens import read_movielens_100k

#: Event ids of the replayed ratings and of the burst start with these (never the sample's ``ml:``).
REPLAY_PREFIX = "demo-replay-"
BURST_PREFIX = "demo-burst-"
REPLAY_DAYS = 28
#: Ratings replayed (about 1.8 events each, and about 6 counter items to update each, at some 150 calls a
#: second on dynalite): 600 make the demo's first start under 30 s longer.
REPLAY_RATINGS = 600
#: Only ratings of the sample's most rated movies are replayed, so the listings show movies with a few
#: views a week rather than a thousand with one.
REPLAY_MOVIES = 150
SEED = 13
SOURCES = ("web", "app", "chatbot", "email")
SOURCE_SHARES = (0.45, 0.3, 0.15, 0.1)
#: stars -> chance of (click after the view, add to cart after the click, purchase after the add to cart).
FUNNEL = {1: (0.05, 0.1, 0.2), 2: (0.15, 0.2, 0.3), 3: (0.35, 0.3, 0.4), 4: (0.55, 0.4, 0.5), 5: (0.75, 0.5, 0.6)}
_STEPS = ("click", "add_to_cart", "purchase")
BURST_CATEGORY = "Sci-Fi"
BURST_ITEMS = 4
BURST_HOURS = 3
#: Users viewing each burst movie.
BURST_VIEWERS = 30


def _funnel(rng: np.random.Generator, user: str, item: str, stars: int, at: datetime, source: str,
            event_id: str) -> list[Event]:
    """A view at *at*, then each later step of the funnel a few minutes apart while the draws allow."""
    events = [Event(user, item, "view", f"{event_id}-view", at, source=source)]
    for step, chance in zip(_STEPS, FUNNEL[stars], strict=True):
        if rng.random() >= chance:
            break
        at += timedelta(seconds=int(rng.integers(20, 600)))
        events.append(Event(user, item, step, f"{event_id}-{step}", at, source=source))
    return events


def replay_events(sample: Path, now: datetime, ratings: int = REPLAY_RATINGS, seed: int = SEED) -> list[Event]:
    """Up to *ratings* ratings of *sample*'s last :data:`REPLAY_DAYS` days (of its :data:`REPLAY_MOVIES` most
    rated movies) as shop events ending at *now*, by time.

    Event ids are ``demo-replay-<user>-<item>-<type>`` (the sample has one rating per user and movie),
    whatever *now* is.
    """
    data = read_movielens_100k(sample)
    last = int(data.timestamps.max())
    items, counts = np.unique(data.item_ids, return_counts=True)
    popular = items[np.lexsort((items, -counts))[:REPLAY_MOVIES]]
    recent = np.flatnonzero((data.timestamps > last - REPLAY_DAYS * 86400) & np.isin(data.item_ids, popular))
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(recent, size=min(ratings, len(recent)), replace=False))
    shift = now.astimezone(timezone.utc).timestamp() - last
    events: list[Event] = []
    for row in chosen:
        user, item = str(data.user_ids[row]), str(data.item_ids[row])
        at = datetime.fromtimestamp(int(data.timestamps[row]) + shift, timezone.utc)
        source = str(rng.choice(SOURCES, p=SOURCE_SHARES))
        events += _funnel(rng, user, item, int(data.ratings[row]), at, source, f"{REPLAY_PREFIX}{user}-{item}")
    # A funnel step can land past now: the newest views are moments old.
    events = [event for event in events if event.timestamp <= now]
    events.sort(key=lambda event: event.timestamp)
    return events


def burst_items(sample: Path, category: str = BURST_CATEGORY, count: int = BURST_ITEMS) -> list[str]:
    """The *count* movies of *category* with the most ratings in *sample* (their ``u.item`` beside it)."""
    data = read_movielens_100k(sample)
    ratings = Counter(str(item) for item in data.item_ids)
    in_category = [row["item_id"] for _, row in movielens_100k_items(sample.with_name("u.item"))
                   if isinstance(row, dict) and category in row.get("categories", ())]
    return sorted(in_category, key=lambda item: (-ratings[item], item))[:count]


def burst_events(sample: Path, now: datetime, seed: int = SEED) -> list[Event]:
    """Views of :func:`burst_items` by :data:`BURST_VIEWERS` sample users each in the :data:`BURST_HOURS` before *now*.

    Event ids are ``demo-burst-<UTC day>-<user>-<item>-<type>``: one burst a day, the same one however
    often the demo starts that day.
    """
    users = sorted({str(user) for user in read_movielens_100k(sample).user_ids}, key=int)
    day = now.astimezone(timezone.utc).strftime("%Y%m%d")
    rng = np.random.default_rng([seed, int(day)])
    events: list[Event] = []
    for item in burst_items(sample):
        for user in rng.choice(users, size=BURST_VIEWERS, replace=False):
            at = now - timedelta(seconds=int(rng.integers(300, BURST_HOURS * 3600)))
            stars = int(rng.choice([3, 4, 5]))
            source = str(rng.choice(SOURCES, p=SOURCE_SHARES))
            events += _funnel(rng, str(user), item, stars, at, source, f"{BURST_PREFIX}{day}-{user}-{item}")
    events = [event for event in events if event.timestamp <= now]
    events.sort(key=lambda event: event.timestamp)
    return events
