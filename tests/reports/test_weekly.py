"""The weekly insights summary: gathered from a source and the registry (moto), as markdown and as a PNG."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from chalicelib.errors import InvalidRequest
from chalicelib.insights.performance import WINDOWS
from chalicelib.reports.weekly import (
    REPORT_WINDOWS,
    LiveModelSummary,
    TrendingRow,
    WeeklySummary,
    gather_summary,
    render_chart,
    render_markdown,
    report_names,
    window_text,
)
from chalicelib.resources import Resources
from tests.support import FakeInsightsSource, content_row

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
#: What a retrain records in the manifest (chalicelib.training.retrain._evaluate), cut to what the report reads.
RETRAIN_METRICS = {"engine": "implicit", "k": 10,
                   "candidate": {"ndcg@10": 0.1867, "map@10": 0.0529, "precision@10": 0.2},
                   "popularity": {"ndcg@10": 0.1084, "map@10": 0.0301}}


def hand_built_summary(**overrides: object) -> WeeklySummary:
    """Two top items, one falling, one trending, one category, and a live model with its report."""
    fields: dict[str, object] = dict(
        generated_at=NOW, window="7d",
        top_items=(content_row("i1", 12_345, 10_000, title="Star Wars | A New Hope", clicks=1_234, add_to_carts=99,
                               purchases=42, distinct_users=8_001),
                   content_row("i2", 900, 0, clicks=0)),
        falling_items=(content_row("i3", 30, 120, title="Fargo", clicks=3, purchases=0),),
        trending=(TrendingRow("i4", "Toy Story", ("Animation", "Comedy"), 3.25, 42.0, 12.9231),),
        best_categories=(content_row("Sci-Fi", 2_000, 1_600, clicks=300, purchases=64),),
        live_model=LiveModelSummary(
            version="20260301T020000.000000Z-abc123", algorithm="implicit-als", engine="implicit",
            trained_at="2026-03-01T02:00:00+00:00", training_cutoff="2026-03-01T01:59:00+00:00", k=10,
            ndcg_at_k=0.1867, map_at_k=0.0529, popularity_ndcg_at_k=0.1084, popularity_map_at_k=0.0301, forced=False,
            report="s3://bucket/models/20260301T020000.000000Z-abc123/report.md"),
    )
    fields.update(overrides)
    return WeeklySummary(**fields)  # type: ignore[arg-type]


def section(text: str, title: str) -> str:
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]


# --- markdown ----------------------------------------------------------------------------------------------


def test_markdown_has_each_section_with_numbers_for_people():
    text = render_markdown(hand_built_summary(), "insights-2026-03-02.png")

    assert text.startswith("# Weekly insights, 2026-03-02\n")
    assert "The 7 days to 2026-03-02 09:00 UTC, each figure compared with the 7 days before." in text
    assert "![Views of the top items, this window and the one before](insights-2026-03-02.png)" in text
    top = section(text, "Top items by views")
    # Thousands separated, rates as percentages, the change signed, a pipe in a title escaped.
    assert ("| 1 | Star Wars \\| A New Hope (`i1`) | 12,345 | +23% | 1,234 | 10.0% | 99 | 42 | 0.3% | 8,001 |"
            in top)
    assert "| 2 | `i2` | 900 | new | 0 | 0.0% | 0 | 0 | 0.0% | 900 |" in top
    assert "| 1 | Fargo (`i3`) | 30 | 120 | -75% | 10.0% | 0.0% |" in section(text, "Falling items")
    assert "| 1 | Toy Story (`i4`) | Animation, Comedy | 3.25 | 42.00 | 12.92 |" in section(text, "Trending")
    assert "| 1 | Sci-Fi | 2,000 | 64 | 3.2% | 15.0% | +25% |" in section(text, "Best categories by conversion")
    live = section(text, "Live model")
    assert ("| `20260301T020000.000000Z-abc123` | implicit-als | implicit | 2026-03-01 02:00 UTC | "
            "0.1867 (popularity 0.1084) | 0.0529 (popularity 0.0301) |") in live
    assert "Retrain report: `s3://bucket/models/20260301T020000.000000Z-abc123/report.md`." in live


def test_empty_sections_say_so():
    summary = hand_built_summary(top_items=(), falling_items=(), trending=(), best_categories=(), live_model=None)

    text = render_markdown(summary, None)

    assert "![" not in text
    assert "No model is published yet." in section(text, "Live model")
    assert "_No item was viewed in the window._" in section(text, "Top items by views")
    assert "_No item with at least 20 views in the window before lost views._" in section(text, "Falling items")
    assert "_Nothing is trending._" in section(text, "Trending")
    assert "_No category had 20 views or more in the window._" in section(text, "Best categories by conversion")
    assert "|" not in text


def test_a_model_without_evaluation_or_report_and_a_forced_one_are_told():
    live = replace(hand_built_summary().live_model, ndcg_at_k=None, map_at_k=None, popularity_ndcg_at_k=None,
                   popularity_map_at_k=None, report=None, forced=True)

    text = section(render_markdown(hand_built_summary(live_model=live), None), "Live model")

    assert "| – (popularity –) | – (popularity –) |" in text
    assert "published without an evaluation" in text and "`--force`" in text
    assert "The live model has no retrain report." in text


def test_tiny_rates_and_large_changes_stay_readable():
    row = content_row("i9", 250_000, 1_000, purchases=3, clicks=1)

    text = render_markdown(hand_built_summary(top_items=(row,)), None)

    assert "| 250,000 | +24,900% | 1 | <0.1% | 0 | 3 | <0.1% |" in text


def test_windows_are_those_the_counters_keep():
    assert set(REPORT_WINDOWS) == set(WINDOWS)
    assert (window_text("7d"), window_text("1h")) == ("7 days", "hour")
    for bad in ("0d", "7", "1w", "30d", " 7d", "-7d"):
        with pytest.raises(InvalidRequest, match="1h, 24h, 7d, 28d"):
            window_text(bad)
    assert report_names(NOW) == ("insights-2026-03-02.md", "insights-2026-03-02.png")


# --- the chart ---------------------------------------------------------------------------------------------


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_MAGIC) and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.mark.parametrize("count", [0, 2, 10])
def test_the_chart_is_a_png_of_sane_size(count):
    rows = tuple(content_row(f"i{n}", 1000 - n * 50, 800, title=f"A film with a rather long title number {n}")
                 for n in range(count))

    data = render_chart(hand_built_summary(top_items=rows))

    width, height = png_size(data)
    assert width == 800 and 250 <= height <= 700
    assert 2_000 < len(data) < 500_000


# --- gathering ---------------------------------------------------------------------------------------------


@pytest.fixture
def model_registry(bucket_settings):
    return Resources(bucket_settings).model_registry


def test_gathering_applies_each_tables_rules_and_reads_the_live_model(model_registry, make_tiny_artifact):
    version = model_registry.publish(make_tiny_artifact(metrics=RETRAIN_METRICS))
    model_registry.put_file(version, "report.md", b"# Retrain report\n", "text/markdown")
    source = FakeInsightsSource(
        items=[content_row("big", 500, 400), content_row("fell", 50, 200), content_row("noise", 1, 10),
               content_row("fell-less", 90, 100), content_row("new", 5, 0)],
        categories=[content_row("Tiny", 2, 0, purchases=2), content_row("Drama", 100, 90, purchases=5),
                    content_row("Comedy", 400, 300, purchases=8)],
        trending=[TrendingRow(f"t{n}", None, (), 5.0 - n, 1.0, 0.5) for n in range(15)])

    summary = gather_summary(source, model_registry, NOW, "7d", limit=10)

    assert [row.key for row in summary.top_items] == ["big", "fell-less", "fell", "new", "noise"]
    # Only items with 20 views or more the window before, and only those that lost views, the largest fall first.
    assert [row.key for row in summary.falling_items] == ["fell", "fell-less"]
    # 2 purchases of 2 views is no best category: too few views.
    assert [row.key for row in summary.best_categories] == ["Drama", "Comedy"]
    assert len(summary.trending) == 10
    live = summary.live_model
    assert (live.version, live.algorithm, live.engine, live.k) == (version, "test", "implicit", 10)
    assert (live.ndcg_at_k, live.map_at_k, live.popularity_ndcg_at_k, live.popularity_map_at_k) == (
        0.1867, 0.0529, 0.1084, 0.0301)
    assert live.trained_at is not None and live.training_cutoff == "2026-01-01T00:00:00+00:00"
    bucket = model_registry.location.removeprefix("s3://")
    assert live.report == f"s3://{bucket}{version}/report.md"
    assert ("items", "7d", "views", 10) in source.calls


def test_gathering_without_a_model_or_its_report(model_registry, make_tiny_artifact):
    assert gather_summary(FakeInsightsSource(), model_registry, NOW).live_model is None

    model_registry.publish(make_tiny_artifact())
    live = gather_summary(FakeInsightsSource(), model_registry, NOW).live_model

    assert live.report is None and live.ndcg_at_k is None and live.engine is None
