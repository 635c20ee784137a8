"""Audience segments of the live model, described with the catalog's titles and categories.

Segments are made at retrain time (:mod:`chalicelib.training.segments`) and
stored with the model version: each user's segment (an int16 array, so a
user's segment is one binary search for their row and one lookup) and, per
segment, its size and its most characteristic item ids (over-represented
among its members). Titles and categories are read from the catalog when a
segment is shown, so a description only ever names items the catalog holds
now (blocked ones and ones it no longer has are left out).

A segment's categories are those of its characteristic items, ranked by lift
again, this time against every segment's characteristic items:

    lift(s, c) = (items of s in c / items of s) / (items of all segments in c / items of all segments)

so a category that describes every segment (Drama, in MovieLens) ranks below
one that sets this segment apart. A category must hold two of the segment's
items (one when it has fewer than four). The label names the first two.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from chalicelib.catalog.cache import CatalogCache
from chalicelib.catalog.item import CatalogItem
from chalicelib.deadlines import Deadline
from chalicelib.errors import SegmentsUnavailable, UserNotFound
from chalicelib.eventlog.log import EventLog
from chalicelib.exports import unerased
from chalicelib.serving.live_model import LiveModel
from chalicelib.serving.recommender import Recommender

#: Items and categories shown per segment.
SHOWN_ITEMS = 5
SHOWN_CATEGORIES = 3


def segment_categories(own: list[CatalogItem], everyone: list[CatalogItem], limit: int = SHOWN_CATEGORIES
                       ) -> list[str]:
    """The categories of *own* (a segment's characteristic items) that set it apart from *everyone*'s (every
    segment's), most distinctive first (module docstring); ties to the more frequent, then by name."""
    mine = Counter(category for item in own for category in set(item.categories))
    overall = Counter(category for item in everyone for category in set(item.categories))
    needed = 2 if len(own) >= 4 else 1
    lift = {category: count * len(everyone) / (overall[category] * len(own))
            for category, count in mine.items() if count >= needed}
    return sorted(lift, key=lambda category: (-lift[category], -mine[category], category))[:limit]


def segment_label(categories: list[str], segment: int) -> str:
    """A short name from a segment's first categories ("Sci-Fi and Action"); "Segment 3" without any."""
    return " and ".join(categories[:2]) or f"Segment {segment}"


def describe_segments(entry: dict[str, Any], catalog: dict[str, CatalogItem]) -> list[dict[str, Any]]:
    """Every segment of a manifest's ``segments`` *entry*, described with the *catalog* items (by id) it has."""
    shown = [[catalog[item["item_id"]] for item in segment["items"]
              if item["item_id"] in catalog and not catalog[item["item_id"]].blocked]
             for segment in entry["segments"]]
    everyone = [item for items in shown for item in items]
    described = []
    for segment, items in zip(entry["segments"], shown, strict=True):
        categories = segment_categories(items, everyone)
        described.append({
            "segment": segment["segment"],
            "label": segment_label(categories, segment["segment"]),
            "users": segment["users"],
            "top_categories": categories,
            "top_items": [{"item_id": item.item_id, "title": item.title, "categories": list(item.categories)}
                          for item in items[:SHOWN_ITEMS]],
        })
    return described


class Segments:
    """The answers of the segment routes, from the live model and the catalog.

    Parameters
    ----------
    live_model: the model being served.
    catalog: titles and categories of items.
    event_log: where users' erasure markers are read.
    """

    def __init__(self, live_model: LiveModel, catalog: CatalogCache, event_log: EventLog) -> None:
        self._live_model = live_model
        self._catalog = catalog
        self._event_log = event_log

    def all(self) -> dict[str, Any]:
        """``GET /segments``."""
        recommender = self._live_model.recommender()
        return {"model_version": recommender.version, "segments": self._describe(recommender)}

    def for_user(self, user_id: str, deadline: Deadline | None = None) -> dict[str, Any]:
        """``GET /users/{user_id}/segment``.

        Raises
        ------
        SegmentsUnavailable
            When the live model has no segments.
        UserNotFound
            When the model does not know *user_id*, or the user was erased since it was trained.
        """
        recommender = self._live_model.recommender()
        self._entry(recommender)
        row = recommender.user_row(user_id)
        if row < 0 or not unerased([user_id], lambda ids: self._event_log.erasures(ids, deadline),
                                   recommender.training_cutoff)[0]:
            raise UserNotFound(user_id)
        segment = int(recommender.artifact.user_segments[row])
        return {"user_id": user_id, "model_version": recommender.version, **self._describe(recommender)[segment]}

    def _describe(self, recommender: Recommender) -> list[dict[str, Any]]:
        entry = self._entry(recommender)
        item_ids = list(dict.fromkeys(item["item_id"] for segment in entry["segments"] for item in segment["items"]))
        return describe_segments(entry, self._catalog.items(item_ids))

    @staticmethod
    def _entry(recommender: Recommender) -> dict[str, Any]:
        entry = recommender.artifact.segments
        if entry is None:
            raise SegmentsUnavailable(f"the live model ({recommender.version}) was published without segments: "
                                      "the next retrain makes them (retrain.py --user-segments)")
        return entry
