"""The retrain pipeline on moto S3: the quality gate, publishing, reports, the CLI, and the API serving the result.

The synthetic log has a clear structure ALS finds and popularity cannot: users u00..u29 click
only items i00..i19, users u30..u59 only items i20..i39, ten items each, at random times.
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from chalicelib.errors import ArtifactError, InvalidTrainingOptions
from chalicelib.eventlog.item import Event, new_event_id
from chalicelib.models.artifact import serialize
from chalicelib.models.registry import ModelRegistry
from chalicelib.resources import Resources, app_resources
from chalicelib.serving.recommender import Recommender
from chalicelib.training.als import AlsParameters
from chalicelib.training.event_arrays import EventArrays, EventLogSnapshot
from chalicelib.training.report import write_report
from chalicelib.training.retrain import PHASES, RetrainOptions, evaluation_doubts, retrain
from chalicelib.training.search import SearchSpace
from chalicelib.training.sources.scan import read_event_log
from tests.support import client_for

WEIGHTS = {"view": 1.0, "click": 2.0, "purchase": 8.0}
GOOD = AlsParameters(factors=4, regularization=0.1, alpha=2.0, iterations=10)
TERRIBLE = AlsParameters(factors=2, regularization=1000.0, alpha=1.0, iterations=1)
SMALL_SPACE = SearchSpace(factors=(4, 8), iterations=(5, 10))
SCANNED_AT = datetime(2026, 2, 1, 12, 0, tzinfo=timezone.utc)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def options(**overrides) -> RetrainOptions:
    """One trial of a small, good configuration unless told otherwise."""
    return replace(RetrainOptions(budget=1, start=GOOD, space=SMALL_SPACE), **overrides)


def grouped_events(n_users: int = 60, n_items: int = 40, per_user: int = 10, seed: int = 0,
                   start: datetime = datetime(2026, 1, 1, tzinfo=timezone.utc)) -> list[tuple[str, str, datetime]]:
    """(user, item, time) clicks: the first half of the users on the first half of the items, and so on."""
    rng = np.random.default_rng(seed)
    half = n_items // 2
    events = []
    for user in range(n_users):
        group = 0 if user < n_users // 2 else 1
        for item in rng.choice(half, per_user, replace=False) + group * half:
            at = start + timedelta(seconds=int(rng.integers(0, 30 * 86_400)))
            events.append((f"u{user:02d}", f"i{item:02d}", at))
    return events


def snapshot_of(events: list[tuple[str, str, datetime]], event_type: str = "click") -> EventLogSnapshot:
    users, items, times = zip(*events, strict=True)
    arrays = EventArrays.from_strings(
        users, items, [event_type] * len(users), [np.datetime64(t.replace(tzinfo=None), "ms") for t in times]
    )
    return EventLogSnapshot(events=arrays, erased={}, scanned_at=SCANNED_AT)


GROUPED = snapshot_of(grouped_events())


def read_grouped(progress):
    return GROUPED


def run(store: ModelRegistry, **overrides):
    return retrain(read_grouped, store, WEIGHTS, options(**overrides))


def ndcg(result, model: str) -> float:
    return result.metrics[model][result.target]


def upload_old_versions(store: ModelRegistry, make_tiny_artifact, count: int) -> list[str]:
    """*count* tiny versions with ids from 2020 (older than anything published now), the newest live."""
    versions = [f"2020010{number}T000000Z-aaaaaa" for number in range(1, count + 1)]
    for version in versions:
        payload, manifest = serialize(make_tiny_artifact(), version, "2020-01-01T00:00:00+00:00")
        store.upload(payload, manifest)
    return versions


# --- the gate -----------------------------------------------------------------------------------


def test_first_retrain_publishes_against_popularity_alone(model_registry):
    result = run(model_registry)

    assert result.published and result.version == model_registry.live_version()
    assert result.live_version is None and "no live model" in result.reason
    assert ndcg(result, "candidate") > ndcg(result, "popularity") + 0.1  # the structure is easy to find
    assert set(result.timings) == set(PHASES)
    assert result.counts["events"] == result.counts["interactions"] == 600
    assert (result.counts["users"], result.counts["items"]) == (60, 40)
    # Time split: floor(0.2 · 10) = 2 held out of each user's 10 -> 120 test, 480 train.
    assert (result.counts["test"], result.counts["train"], result.counts["evaluated_users"]) == (120, 480, 60)

    manifest = model_registry.read_manifest(result.version)
    metrics = manifest["metrics"]
    assert metrics["split"] == "time" and metrics["k"] == 10
    assert metrics["live"] is None and metrics["live_version"] is None
    assert set(metrics["candidate"]) == {"precision@10", "recall@10", "ndcg@10", "map@10", "coverage"}
    assert metrics["candidate"]["ndcg@10"] == pytest.approx(ndcg(result, "candidate"))
    assert metrics["popularity"]["ndcg@10"] == pytest.approx(ndcg(result, "popularity"))
    assert metrics["gate"] == {"passed": True, "forced": False, "margin": 0.0, "target": "ndcg@10"}
    assert manifest["forced"] is False
    assert manifest["training_cutoff"] == "2026-02-01T12:00:00.000+00:00"  # when the read began
    assert manifest["hyperparameters"] == {**asdict(GOOD), "activity_reference": 10.0}  # every user has 10
    # Published after a refit on all the data, not the training part.
    assert manifest["counts"] == {"users": 60, "items": 40, "interactions": 600}


def test_margin_is_required_over_the_live_configuration(model_registry):
    live = run(model_registry).version

    # The same configuration again: it ties with the refitted live one, enough with margin 0 only.
    same = run(model_registry, margin=0.0)
    assert same.published and ndcg(same, "candidate") == pytest.approx(ndcg(same, "live"))

    refused = run(model_registry, margin=0.01)
    assert not refused.published and "by 0.01" in refused.reason
    assert model_registry.live_version() == same.version != live


def test_a_candidate_worse_than_the_live_configuration_is_refused_unless_forced(model_registry):
    live = run(model_registry).version

    refused = run(model_registry, start=TERRIBLE)

    assert not refused.published and refused.version is None and refused.artifact is None
    assert "live model" in refused.reason
    assert refused.live_version == live and model_registry.live_version() == live
    assert [entry.version for entry in model_registry.list_versions()] == [live]
    # The live configuration was refitted on the same training part and scored on the same test part.
    assert refused.metrics["live_parameters"] == asdict(GOOD)  # random_state is the seed, 42
    assert ndcg(refused, "candidate") < ndcg(refused, "live")
    assert refused.metrics["gate"] == {"passed": False, "forced": False, "margin": 0.0, "target": "ndcg@10"}

    forced = run(model_registry, start=TERRIBLE, force=True)

    assert forced.published and model_registry.live_version() == forced.version != live
    assert "live model" in forced.reason and "published anyway" in forced.reason
    manifest = model_registry.read_manifest(forced.version)
    assert manifest["forced"] is True
    assert manifest["metrics"]["gate"]["passed"] is False and manifest["metrics"]["gate"]["forced"] is True
    assert model_registry.load(forced.version).forced is True
    # (By version id, which orders versions even within one second.)
    assert {entry.version: entry.forced for entry in model_registry.list_versions()} == {
        forced.version: True, live: False}


def test_dry_run_does_everything_but_publish(model_registry, make_tiny_artifact):
    [live] = upload_old_versions(model_registry, make_tiny_artifact, 1)

    result = run(model_registry, dry_run=True)

    assert not result.published and result.version is None
    assert "dry run" in result.reason and result.metrics["gate"]["passed"] is True
    assert result.live_version == live
    # The artifact that would have gone live: refitted on all the data.
    assert result.artifact is not None and (result.artifact.n_users, result.artifact.n_items) == (60, 40)
    assert result.artifact.training_cutoff == "2026-02-01T12:00:00.000+00:00"
    assert set(result.timings) == set(PHASES) - {"upload"}
    assert model_registry.live_version() == live
    assert [entry.version for entry in model_registry.list_versions()] == [live]


def test_a_candidate_that_does_not_beat_popularity_is_refused_without_a_live_model(model_registry, tmp_path):
    # Every user clicked the same five hits h0..h4, last of all, after two of twenty niche items.
    # The time split holds out each user's latest click (floor(0.2 · 7) = 1), always a hit; the
    # user's four other hits are excluded, so popularity ranks the held-out hit first: nDCG 1,
    # which no candidate can exceed.
    rng = np.random.default_rng(1)
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    events = []
    for user in range(30):
        for position, item in enumerate(rng.choice(20, 2, replace=False)):
            events.append((f"u{user:02d}", f"n{item:02d}", start + timedelta(hours=position)))
        for position, item in enumerate(rng.permutation(5)):
            events.append((f"u{user:02d}", f"h{item}", start + timedelta(days=1, hours=position)))
    snapshot = snapshot_of(events)

    result = retrain(lambda progress: snapshot, model_registry, WEIGHTS, options())

    assert ndcg(result, "popularity") == pytest.approx(1.0)
    assert not result.published and "does not beat popularity" in result.reason
    assert result.metrics["gate"]["passed"] is False and result.metrics["live"] is None
    assert model_registry.live_version() is None and model_registry.list_versions() == []
    text = write_report(result, tmp_path)[0].read_text()
    assert "**not published**" in text and "| live (none) | – | – | – | – | – |" in text


# Regression: ranking_metrics assumed k columns and failed on a catalogue smaller than k.
def test_a_catalog_smaller_than_k_can_be_retrained(model_registry):
    small = snapshot_of(grouped_events(n_users=20, n_items=8, per_user=3))

    result = retrain(lambda progress: small, model_registry, WEIGHTS, options())

    assert result.metrics["candidate"]["ndcg@10"] >= 0


# --- report, split, versions --------------------------------------------------------------------


def test_report_names_the_split_the_three_models_and_phase_times(model_registry, tmp_path):
    live = run(model_registry).version
    result = run(model_registry, budget=2)

    text_path, chart_path = write_report(result, tmp_path / "report")

    assert (text_path.name, chart_path.name) == ("report.md", "report.png")
    text = text_path.read_text()
    assert "time split: each user's most recent interactions held out" in text
    assert "20% of each user's positive interactions, seed 42" in text
    for row in ("| candidate |", f"| live ({live}) |", "| popularity |"):
        assert row in text
    decision = f"**published {result.version}**" if result.published else "**not published**"
    assert f"Decision: {decision}" in text
    assert "## Wall time per phase" in text
    for phase in PHASES:
        assert (f"| {phase} |" in text) == (phase in result.timings)
    search_section = text[text.index("## Search"):text.index("## Wall time per phase")]
    trial_rows = [line for line in search_section.splitlines() if line[:3] in ("| 1", "| 2", "| 3")]
    assert [row.split(" | ")[0] for row in trial_rows] == ["| 1", "| 2"]  # one row per search trial
    chart = chart_path.read_bytes()
    assert chart.startswith(PNG_MAGIC) and len(chart) > 1000
    assert "Content insights" not in text  # no weekly report given, no line


def test_report_links_the_latest_weekly_insights_report_when_given(model_registry, tmp_path):
    result = run(model_registry, budget=0)

    text = write_report(result, tmp_path, "s3://bucket/insights/latest.md")[0].read_text()

    assert "Content insights: the latest weekly report is at `s3://bucket/insights/latest.md`" in text


def test_random_split_is_used_and_reported(model_registry, tmp_path):
    result = run(model_registry, split="random")

    assert result.published
    assert result.metrics["split"] == "random"
    assert model_registry.read_manifest(result.version)["metrics"]["split"] == "random"
    # round(0.8 · 10) = 8 kept, 2 held out per user, like the time split but chosen at random.
    assert result.counts["test"] == 120
    text = write_report(result, tmp_path)[0].read_text()
    assert "random split stratified by user" in text and "time split" not in text


def test_identical_timestamps_are_evaluated_like_the_stratified_split(model_registry, tmp_path):
    # Imported without their own times, every event carries the import's: "most recent" means nothing.
    imported = snapshot_of([(user, item, SCANNED_AT) for user, item, _ in grouped_events()])
    by_time = retrain(lambda progress: imported, model_registry, WEIGHTS, options(dry_run=True))
    by_random = retrain(lambda progress: imported, model_registry, WEIGHTS, options(dry_run=True, split="random"))

    assert by_time.metrics["split"] == "random"
    check = by_time.metrics["split_check"]
    assert (check["requested"], check["used"], check["tied_share"]) == ("time", "random", 1.0)
    assert by_time.counts["test"] == by_random.counts["test"]
    for model in ("candidate", "popularity"):
        assert by_time.metrics[model] == pytest.approx(by_random.metrics[model], rel=1e-6)
    assert by_time.warnings[0].startswith("timestamps cannot order the interactions")
    assert by_time.metrics["warnings"] == by_time.warnings
    text = write_report(by_time, tmp_path)[0].read_text()
    assert "> **Warning:** timestamps cannot order the interactions" in text
    assert "random split stratified by user" in text


def test_distinct_timestamps_keep_the_time_split_and_record_the_check(model_registry):
    result = run(model_registry)
    assert result.metrics["split"] == "time"
    assert result.metrics["split_check"] == {"requested": "time", "used": "time", "held_out": 120,
                                             "decided_by_ties": 0, "tied_share": 0.0, "reason": None}
    assert model_registry.read_manifest(result.version)["metrics"]["split_check"]["used"] == "time"


def test_the_report_warns_of_few_evaluated_users(model_registry, tmp_path):
    result = run(model_registry)

    assert result.warnings == ["only 60 users were evaluated (fewer than 100): differences of a few hundredths "
                               "are noise"]
    assert model_registry.read_manifest(result.version)["metrics"]["warnings"] == result.warnings
    text = write_report(result, tmp_path)[0].read_text()
    assert "> **Warning:** only 60 users were evaluated" in text


@pytest.mark.parametrize(("users", "candidate", "popularity", "expected"), [
    (5000, 0.21, 0.09, []),
    (5000, 0.005, 0.09, []),  # a bad candidate is the gate's business, not a doubt about the data
    (5000, 0.0065, 0.0004, ["both score near zero"]),  # the bulk-imported play counts of the issue
    (99, 0.21, 0.09, ["only 99 users were evaluated"]),
    (12, 0.0, 0.0, ["only 12 users", "both score near zero"]),
])
def test_implausible_evaluations_are_named(users, candidate, popularity, expected):
    doubts = evaluation_doubts(users, candidate, popularity, "ndcg@10")
    assert len(doubts) == len(expected)
    for doubt, words in zip(doubts, expected, strict=True):
        assert words in doubt
    if expected[-1:] == ["both score near zero"]:
        assert f"(ndcg@10 {candidate:.4f}) and popularity ({popularity:.4f})" in doubts[-1]
        assert "--split random" in doubts[-1]


def test_keep_versions_prunes_the_oldest(model_registry, make_tiny_artifact):
    old = upload_old_versions(model_registry, make_tiny_artifact, 3)

    result = run(model_registry, keep_versions=2)

    assert result.published and result.live_version == old[-1]
    assert result.metrics["live"] is None  # a "test" model has no ALS configuration to refit
    assert [entry.version for entry in model_registry.list_versions()] == [result.version, old[-1]]
    with pytest.raises(ArtifactError):
        model_registry.load(old[0])


def test_rollback_after_a_publish_returns_to_the_previous_version(model_registry, make_tiny_artifact):
    [previous] = upload_old_versions(model_registry, make_tiny_artifact, 1)
    result = run(model_registry)
    assert model_registry.live_version() == result.version

    assert model_registry.rollback() == previous
    assert model_registry.live_version() == previous
    # Both versions are still there: rolling forward again is possible.
    assert model_registry.rollback(to=result.version) == result.version


def write_events(resources: Resources, events: list[tuple[str, str, datetime]], event_type: str = "click") -> None:
    """Store (user, item, time) events of one type through the event log."""
    receipt = resources.event_log.write([Event(user, item, event_type, new_event_id(), at) for user, item, at in events])
    assert len(receipt.stored) == len(events) and not receipt.failed


def recent_grouped_events(**kwargs) -> list[tuple[str, str, datetime]]:
    """The grouped clicks, over the last 30 days (the API accepts events up to 365 days old)."""
    start = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=31)
    return grouped_events(start=start, **kwargs)


# --- end to end through the API -----------------------------------------------------------------


def test_the_api_serves_the_retrained_model(settings, resources, tmp_path):
    write_events(resources, recent_grouped_events(n_users=40, n_items=30, per_user=8))
    store = resources.model_registry

    def read(progress):
        return read_event_log(resources.scan_table, progress)

    first = retrain(read, store, settings.event_weight_map, options())
    assert first.published

    def get(client, path):
        response = client.http.get(path)
        assert response.status_code == 200, response.body
        return json.loads(response.body)

    with client_for(replace(settings, realtime_timeout_seconds=5.0), tmp_path) as client:
        assert get(client, "/health")["model_version"] == first.version
        assert get(client, "/users/newcomer/recommendations")["strategy"] == "popular"
        before = get(client, "/users/u00/recommendations")
        assert before["strategy"] == "personalized"
        # u00 likes the first group's items (i00..i14): so do its recommendations.
        assert all(item["item_id"] < "i15" for item in before["items"][:3])

        # u00 buys seven of the second group's items; a newcomer clicks the same seven.
        batch = [{"user_id": "u00", "item_id": f"i{item}", "event_type": "purchase"} for item in range(15, 22)]
        batch += [{"user_id": "newcomer", "item_id": f"i{item}", "event_type": "click"} for item in range(15, 22)]
        response = client.http.post("/events", body=json.dumps({"events": batch}),
                                    headers={"Content-Type": "application/json"})
        assert response.status_code == 202, response.body

        second = retrain(read, store, settings.event_weight_map, options())
        assert second.published and second.live_version == first.version
        assert second.counts["users"] == 41

        get(client, "/health")  # the next request starts a background refresh...
        app_resources().live_model.wait_for_refresh(10)  # ...which picks up the new version
        health = get(client, "/health")
        assert health["model_version"] == second.version
        assert health["counts"]["users"] == 41
        newcomer = get(client, "/users/newcomer/recommendations")
        after = get(client, "/users/u00/recommendations")

    # The newcomer is in the model now (its events were stored before the training cutoff):
    # it gets the second group's items, none of the ones it clicked.
    clicked = {f"i{item}" for item in range(15, 22)}
    assert newcomer["strategy"] == "personalized" and newcomer["model_version"] == second.version
    assert {item["item_id"] for item in newcomer["items"]}.isdisjoint(clicked)
    assert all(item["item_id"] >= "i15" for item in newcomer["items"][:3]), newcomer["items"]
    # u00's purchases are in its training row now: never recommended again, and the list changed.
    assert after["strategy"] == "personalized"
    assert {item["item_id"] for item in after["items"]}.isdisjoint(clicked)
    assert [item["item_id"] for item in after["items"]] != [item["item_id"] for item in before["items"]]


# --- search off, warm refit, approximate index ----------------------------------------------------------


def test_budget_zero_fits_the_given_configuration_without_a_search(model_registry):
    result = run(model_registry, budget=0)

    assert result.search is None and result.chosen == GOOD
    assert result.metrics["validation"] is None
    assert result.published and result.artifact.hyperparameters["factors"] == GOOD.factors


def test_the_published_model_is_refitted_from_the_candidate_with_a_third_of_the_iterations(model_registry):
    warm = run(model_registry, dry_run=True)
    cold = run(model_registry, dry_run=True, warm_refit=False)

    assert warm.metrics["refit"] == {"warm_start": "candidate", "iterations": 4}  # ceil(10 / 3)
    assert "refit" not in cold.metrics
    # The artifact records the configuration chosen, not the shortened refit.
    assert warm.artifact.hyperparameters["iterations"] == GOOD.iterations
    # Both published models rank the two taste groups apart for a user of each.
    for result in (warm, cold):
        recommender = Recommender(result.artifact)
        for user, group in (("u00", "first"), ("u59", "second")):
            answer = recommender.recommend(recommender.profile_for_user(user), 5)
            in_first_half = [int(item_id[1:]) < 20 for item_id in answer.item_ids]
            assert all(in_first_half) if group == "first" else not any(in_first_half)


def test_models_from_the_approximate_index_size_on_carry_one(model_registry):
    indexed = run(model_registry, dry_run=True, approximate_index_min_items=40)
    plain = run(model_registry, dry_run=True, approximate_index_min_items=41)

    assert indexed.artifact.ivf_centroids is not None and indexed.artifact.approximate_index["lists"] == 6
    assert plain.artifact.ivf_centroids is None and plain.artifact.approximate_index is None


# --- segments -----------------------------------------------------------------------------------


def test_the_published_model_carries_segments_that_find_the_two_groups(model_registry):
    result = run(model_registry, user_segments=2)

    loaded = model_registry.load(result.version)
    assert sorted(segment["users"] for segment in loaded.segments["segments"]) == [30, 30]
    first_half = loaded.user_segments[np.char.less(loaded.user_ids, "u30")]  # users u00..u29 clicked i00..i19
    assert len(set(first_half.tolist())) == 1
    described = loaded.segments["segments"][int(first_half[0])]["items"]
    assert described and all(item["item_id"] < "i20" and item["lift"] > 1 for item in described)


def test_no_segments_when_asked_for_none(model_registry):
    assert model_registry.load(run(model_registry, user_segments=0).version).segments is None


def test_a_segment_count_out_of_range_is_refused_before_reading(model_registry):
    def never(progress):
        raise AssertionError("read although the options are wrong")

    with pytest.raises(InvalidTrainingOptions, match="user segments"):
        retrain(never, model_registry, WEIGHTS, options(user_segments=-1))
