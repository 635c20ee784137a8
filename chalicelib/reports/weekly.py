"""The weekly insights summary: what content did, what is trending, and how good the live model is.

:func:`gather_summary` asks an :class:`InsightsSource` (the content-performance
counters and trending) and the model registry once; :func:`render_markdown`
and :func:`render_chart` turn the summary into a page and its PNG, and
:mod:`chalicelib.reports.slack` into a chat message. Nothing here writes:
``scripts/insights_report.py`` saves, publishes and posts.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from matplotlib.backends.backend_agg import FigureCanvasAgg  # files only, never a window
from matplotlib.figure import Figure

from chalicelib.errors import InvalidRequest
from chalicelib.models.registry import ModelRegistry, VersionInfo

DEFAULT_WINDOW = "7d"
#: Rows of each table.
DEFAULT_LIMIT = 10
#: An item counts as falling only with this many views in the window before: below it, a change of
#: a few views reads as -80 % and noise would fill the table.
MIN_PREVIOUS_VIEWS = 20
#: A category is ranked by conversion only with this many views in the window: 1 purchase of 1 view is 100 %.
MIN_CATEGORY_VIEWS = 20
#: Rows asked of the source by change (lowest first) and by conversion, among which this module picks the
#: falling items and the best categories after dropping those with too few views.
FALLING_CANDIDATES = 500
CATEGORY_CANDIDATES = 200
#: The retrain's report beside each model version (scripts/retrain.py uploads it).
RETRAIN_REPORT = "report.md"
#: The windows the counters keep (``chalicelib.insights.performance.WINDOWS``), as the report names them.
REPORT_WINDOWS = {"1h": "hour", "24h": "24 hours", "7d": "7 days", "28d": "28 days"}
#: Longest title shown in a table cell or a chart label.
_TITLE_CHARACTERS = 80
_LABEL_CHARACTERS = 32


@dataclass(frozen=True)
class ContentRow:
    """One item or category over a window, with the same window just before."""

    key: str  # item id or category name
    title: str | None  # catalog title for items; None for categories
    views: int
    clicks: int
    add_to_carts: int
    purchases: int
    distinct_users: int
    click_through_rate: float | None  # clicks / views, None when views == 0
    conversion_rate: float | None  # purchases / views, None when views == 0
    previous_views: int  # views in the same window just before
    change: float | None  # relative change of views against the previous window, None when previous is 0


@dataclass(frozen=True)
class TrendingRow:
    """An item whose recent activity stands out from its baseline."""

    item_id: str
    title: str | None
    categories: tuple[str, ...]
    score: float
    recent: float
    baseline: float


class InsightsSource(Protocol):
    """Where the content figures come from (the counters and trending, adapted)."""

    def items(self, window: str, sort: str, limit: int) -> list[ContentRow]:
        """Items over *window* (``7d``), by ``views`` (most first) or ``change`` (lowest first)."""
        ...

    def categories(self, window: str, sort: str, limit: int) -> list[ContentRow]:
        """Categories over *window*, by ``conversion_rate`` (highest first)."""
        ...

    def trending(self, limit: int) -> list[TrendingRow]:
        """The most trending items, highest score first."""
        ...


@dataclass(frozen=True)
class LiveModelSummary:
    """The live model as its manifest describes it, and its quality as the retrain measured it.

    The metrics are the held-out ones the retrain recorded (``metrics.candidate``
    and ``metrics.popularity`` of the manifest); None when the version was
    published without evaluation (``scripts/train.py``).
    """

    version: str
    algorithm: str | None
    engine: str | None
    trained_at: str | None
    training_cutoff: str | None
    k: int
    ndcg_at_k: float | None
    map_at_k: float | None
    popularity_ndcg_at_k: float | None
    popularity_map_at_k: float | None
    forced: bool
    #: The ``s3://`` address of the retrain's report beside the version, None when it has none.
    report: str | None


@dataclass(frozen=True)
class WeeklySummary:
    """Everything the weekly report shows, gathered once."""

    generated_at: datetime
    window: str
    top_items: tuple[ContentRow, ...]
    falling_items: tuple[ContentRow, ...]
    trending: tuple[TrendingRow, ...]
    best_categories: tuple[ContentRow, ...]
    live_model: LiveModelSummary | None
    min_previous_views: int = MIN_PREVIOUS_VIEWS
    min_category_views: int = MIN_CATEGORY_VIEWS


def window_text(window: str) -> str:
    """How the report names *window* (``7d`` -> ``7 days``), one of :data:`REPORT_WINDOWS`.

    Raises
    ------
    InvalidRequest
        When the counters do not keep *window*.
    """
    if window not in REPORT_WINDOWS:
        raise InvalidRequest(f"window must be one of {', '.join(REPORT_WINDOWS)} (the windows the counters keep); "
                             f"got {window!r}", field="window")
    return REPORT_WINDOWS[window]


def report_names(generated_at: datetime) -> tuple[str, str]:
    """The file names of the page and its chart: ``insights-YYYY-MM-DD.md`` and ``.png``."""
    stem = f"insights-{generated_at:%Y-%m-%d}"
    return f"{stem}.md", f"{stem}.png"


def gather_summary(source: InsightsSource, registry: ModelRegistry, now: datetime, window: str = DEFAULT_WINDOW,
                   limit: int = DEFAULT_LIMIT, min_previous_views: int = MIN_PREVIOUS_VIEWS,
                   min_category_views: int = MIN_CATEGORY_VIEWS) -> WeeklySummary:
    """Ask *source* and *registry* for the week's figures.

    Parameters
    ----------
    source: the content counters and trending.
    registry: where the live model's manifest and retrain report are.
    now: when the summary is made (its date names the files).
    window: the period each figure covers, compared with the one just before.
    limit: rows of each table.
    min_previous_views: views an item needs in the previous window to count as falling.
    min_category_views: views a category needs in the window to be ranked by conversion.
    """
    window_text(window)
    # The source's own order is not trusted beyond choosing candidates: the rules of each table are applied here.
    falling = [row for row in source.items(window, "change", FALLING_CANDIDATES)
               if row.previous_views >= min_previous_views and row.change is not None and row.change < 0]
    falling.sort(key=lambda row: (row.change, -row.previous_views, row.key))
    categories = [row for row in source.categories(window, "conversion_rate", CATEGORY_CANDIDATES)
                  if row.views >= min_category_views and row.conversion_rate is not None]
    categories.sort(key=lambda row: (-row.conversion_rate, -row.views, row.key))
    return WeeklySummary(
        generated_at=now, window=window,
        top_items=tuple(source.items(window, "views", limit)[:limit]),
        falling_items=tuple(falling[:limit]),
        trending=tuple(source.trending(limit)[:limit]),
        best_categories=tuple(categories[:limit]),
        live_model=live_model_summary(registry),
        min_previous_views=min_previous_views, min_category_views=min_category_views,
    )


def live_model_summary(registry: ModelRegistry) -> LiveModelSummary | None:
    """The live model's version, engine, training time and held-out quality; None when none is published."""
    version = registry.live_version()
    if version is None:
        return None
    manifest = registry.read_manifest(version)
    info = VersionInfo.from_manifest(version, True, manifest)
    metrics = manifest.get("metrics") if isinstance(manifest.get("metrics"), dict) else {}
    k = metrics.get("k") if isinstance(metrics.get("k"), int) and not isinstance(metrics.get("k"), bool) else 10
    popularity = metrics.get("popularity") if isinstance(metrics.get("popularity"), dict) else {}
    engine = metrics.get("engine")
    return LiveModelSummary(
        version=version, algorithm=info.algorithm, engine=engine if isinstance(engine, str) else None,
        trained_at=info.created_at, training_cutoff=info.training_cutoff, k=k,
        ndcg_at_k=info.metric(f"ndcg@{k}"), map_at_k=info.metric(f"map@{k}"),
        popularity_ndcg_at_k=_number(popularity.get(f"ndcg@{k}")),
        popularity_map_at_k=_number(popularity.get(f"map@{k}")),
        forced=info.forced, report=registry.file_address(version, RETRAIN_REPORT),
    )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


# --- formatting for people ---------------------------------------------------------------------------------


def count_text(value: int) -> str:
    """``12,345``."""
    return f"{value:,}"


def rate_text(value: float | None) -> str:
    """A share as a percentage with one decimal (``3.4%``), ``<0.1%`` for tiny ones, ``–`` when unknown."""
    if value is None:
        return "–"
    if 0 < value < 0.0005:
        return "<0.1%"
    return f"{value * 100:.1f}%"


def change_text(row: ContentRow) -> str:
    """The change of views as ``+12%`` / ``-35%``; ``new`` with no views the window before, ``–`` with none at all."""
    if row.change is None:
        return "new" if row.views > 0 else "–"
    return f"{row.change * 100:+,.0f}%"


def score_text(value: float | None) -> str:
    """A score or rate: two decimals below 100, whole numbers with separators above."""
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def metric_text(value: float | None) -> str:
    """A ranking metric such as nDCG@10 with four decimals, as the retrain's report prints them."""
    return "–" if value is None else f"{value:.4f}"


def shorten(text: str, limit: int) -> str:
    """*text* on one line, cut to *limit* characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _cell(text: str) -> str:
    # A pipe would end the table cell; a backslash before it keeps it as text.
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _item_cell(key: str, title: str | None) -> str:
    code = f"`{_cell(key)}`"
    return f"{_cell(shorten(title, _TITLE_CHARACTERS))} ({code})" if title else code


def _when(value: str | None) -> str:
    if not value:
        return "–"
    try:
        return f"{datetime.fromisoformat(value):%Y-%m-%d %H:%M %Z}".strip()
    except ValueError:
        return value


def render_markdown(summary: WeeklySummary, chart_name: str | None) -> str:
    """The summary as a markdown page; *chart_name* is the PNG beside it (None: no chart)."""
    period = window_text(summary.window)
    lines = [
        f"# Weekly insights, {summary.generated_at:%Y-%m-%d}",
        "",
        f"The {period} to {summary.generated_at:%Y-%m-%d %H:%M %Z}".rstrip()
        + f", each figure compared with the {period} before.",
        "",
    ]
    if chart_name:
        lines += [f"![Views of the top items, this window and the one before]({chart_name})", ""]
    lines += ["## Live model", "", *_live_model_lines(summary.live_model), ""]
    lines += ["## Top items by views", ""]
    lines += _table(
        ["#", "item", "views", "change", "clicks", "CTR", "add to cart", "purchases", "conversion", "users"],
        [[str(rank), _item_cell(row.key, row.title), count_text(row.views), change_text(row), count_text(row.clicks),
          rate_text(row.click_through_rate), count_text(row.add_to_carts), count_text(row.purchases),
          rate_text(row.conversion_rate), count_text(row.distinct_users)]
         for rank, row in enumerate(summary.top_items, start=1)],
        "No item was viewed in the window.")
    lines += ["## Falling items", "",
              f"Items with at least {summary.min_previous_views:,} views in the window before, by their fall in views.",
              ""]
    lines += _table(
        ["#", "item", "views", "before", "change", "CTR", "conversion"],
        [[str(rank), _item_cell(row.key, row.title), count_text(row.views), count_text(row.previous_views),
          change_text(row), rate_text(row.click_through_rate), rate_text(row.conversion_rate)]
         for rank, row in enumerate(summary.falling_items, start=1)],
        f"No item with at least {summary.min_previous_views:,} views in the window before lost views.")
    lines += ["## Trending", ""]
    lines += _table(
        ["#", "item", "categories", "score", "recent", "baseline"],
        [[str(rank), _item_cell(row.item_id, row.title), _cell(", ".join(row.categories)) or "–",
          score_text(row.score), score_text(row.recent), score_text(row.baseline)]
         for rank, row in enumerate(summary.trending, start=1)],
        "Nothing is trending.")
    lines += ["## Best categories by conversion", "",
              f"Categories with at least {summary.min_category_views:,} views in the window, by purchases per view.",
              ""]
    lines += _table(
        ["#", "category", "views", "purchases", "conversion", "CTR", "change"],
        [[str(rank), _cell(shorten(row.key, _TITLE_CHARACTERS)), count_text(row.views), count_text(row.purchases),
          rate_text(row.conversion_rate), rate_text(row.click_through_rate), change_text(row)]
         for rank, row in enumerate(summary.best_categories, start=1)],
        f"No category had {summary.min_category_views:,} views or more in the window.")
    return "\n".join(lines).rstrip("\n") + "\n"


def _live_model_lines(live: LiveModelSummary | None) -> list[str]:
    if live is None:
        return ["No model is published yet."]
    lines = _table(
        ["version", "algorithm", "engine", "trained", f"nDCG@{live.k}", f"MAP@{live.k}"],
        [[f"`{live.version}`", _cell(live.algorithm or "–"), _cell(live.engine or "–"), _when(live.trained_at),
          f"{metric_text(live.ndcg_at_k)} (popularity {metric_text(live.popularity_ndcg_at_k)})",
          f"{metric_text(live.map_at_k)} (popularity {metric_text(live.popularity_map_at_k)})"]],
        "")
    if live.ndcg_at_k is None:
        lines += ["The live model was published without an evaluation (no held-out metrics in its manifest).", ""]
    if live.forced:
        lines += ["> **Note:** this version was published with `--force` although the quality gate refused it.", ""]
    lines.append(f"Retrain report: `{live.report}`." if live.report else "The live model has no retrain report.")
    return lines


def _table(header: list[str], rows: list[list[str]], empty: str) -> list[str]:
    if not rows:
        return [f"_{empty}_", ""]
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(row) + " |" for row in rows], ""]


def render_chart(summary: WeeklySummary) -> bytes:
    """The top items' views in the window and the window before, as horizontal bars in a PNG."""
    rows = summary.top_items
    figure = Figure(figsize=(8, max(2.5, 0.45 * len(rows) + 1.3)), dpi=100)
    FigureCanvasAgg(figure)  # the Agg canvas: rendering needs no display
    axes = figure.add_subplot()
    if rows:
        positions = range(len(rows))
        height = 0.4
        axes.barh([p - height / 2 for p in positions], [row.views for row in rows], height, label="this window")
        axes.barh([p + height / 2 for p in positions], [row.previous_views for row in rows], height,
                  label="window before", color="#bbbbbb")
        axes.set_yticks(list(positions))
        axes.set_yticklabels([shorten(row.title or row.key, _LABEL_CHARACTERS) for row in rows])
        axes.invert_yaxis()  # the most viewed on top, as in the table
        axes.set_xlabel("views")
        axes.legend(loc="lower right")
    else:
        axes.text(0.5, 0.5, "no item was viewed in the window", ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
    axes.set_title(f"Top items by views, last {window_text(summary.window)} to "
                   f"{summary.generated_at:%Y-%m-%d}")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
