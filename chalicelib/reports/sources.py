"""The weekly report's figures from the insight counters: :class:`ContentPerformance` and :class:`Trending`
adapted to :class:`chalicelib.reports.weekly.InsightsSource`.

The counters' listings compare *events* with the window before; the report's ``change`` is the change
of *views*, so it is computed here from each row's ``previous.views``, and the falling items (lowest
change first) are ordered here over every row of the window.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chalicelib.errors import InvalidRequest
from chalicelib.insights.performance import WINDOWS, ContentPerformance, InsightsQuery, change_of
from chalicelib.insights.trending import Trending
from chalicelib.reports.weekly import ContentRow, TrendingRow

#: Rows read per listing call when every row of a window is needed (the falling items).
PAGE = 1000


def content_row(row: dict[str, Any], key_field: str) -> ContentRow:
    """One row of a content-performance listing as the report's :class:`ContentRow` (change of views)."""
    previous_views = row["previous"]["views"]
    return ContentRow(
        key=row[key_field], title=row.get("title"), views=row["views"], clicks=row["clicks"],
        add_to_carts=row["add_to_carts"], purchases=row["purchases"], distinct_users=row["distinct_users"] or 0,
        click_through_rate=row["click_through_rate"], conversion_rate=row["conversion_rate"],
        previous_views=previous_views, change=change_of(row["views"], previous_views))


class CounterInsights:
    """:class:`InsightsSource` over the counters.

    Parameters
    ----------
    performance: the content-performance listings (``Resources.insights.content_performance``).
    trending: trending items (``Resources.insights.trending``).
    """

    def __init__(self, performance: ContentPerformance, trending: Trending) -> None:
        self._performance = performance
        self._trending = trending

    def items(self, window: str, sort: str, limit: int) -> list[ContentRow]:
        """Items over *window*, by ``views`` (most first) or ``change`` of views (lowest first, unknown last)."""
        _check_window(window)
        if sort == "views":
            answer = self._performance.items(InsightsQuery(window=window, sort="views", limit=limit))
            return [content_row(row, "item_id") for row in answer["items"]]
        if sort != "change":
            raise InvalidRequest(f"items are listed by views or change, not {sort!r}", "sort")
        rows: list[ContentRow] = []
        while True:
            # One snapshot for every page: the listings keep it CACHE_SECONDS.
            answer = self._performance.items(InsightsQuery(window=window, sort="views", limit=PAGE, offset=len(rows)))
            rows += [content_row(row, "item_id") for row in answer["items"]]
            if answer["next_cursor"] is None:
                break
        known = sorted((row for row in rows if row.change is not None), key=lambda row: (row.change, row.key))
        return (known + [row for row in rows if row.change is None])[:limit]

    def categories(self, window: str, sort: str, limit: int) -> list[ContentRow]:
        """Categories over *window*, by ``conversion_rate`` (highest first, unknown last)."""
        _check_window(window)
        if sort != "conversion_rate":
            raise InvalidRequest(f"categories are listed by conversion_rate, not {sort!r}", "sort")
        answer = self._performance.categories(InsightsQuery(window=window, sort="conversion_rate", limit=limit))
        return [content_row(row, "category") for row in answer["categories"]]

    def trending(self, limit: int) -> list[TrendingRow]:
        """The *limit* items trending most, with their recent rate and baseline (weighted events per day)."""
        item_ids, _, rates, baselines = self._trending.figures()
        position = {item_id: row for row, item_id in enumerate(item_ids)}
        answer = self._trending.answer(limit)
        return [TrendingRow(item_id=item["item_id"], title=item.get("title"),
                            categories=tuple(item.get("categories", ())), score=item["score"],
                            recent=round(float(rates[position[item["item_id"]]]), 2),
                            baseline=round(float(baselines[position[item["item_id"]]]), 2))
                for item in answer["items"] if item["item_id"] in position and not np.isnan(item["score"])]


def _check_window(window: str) -> None:
    if window not in WINDOWS:
        raise InvalidRequest(f"window must be one of {', '.join(WINDOWS)}; got {window!r}", "window")
