"""`make demo`: the sample enters DynamoDB through the write path, the model is trained from it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.eventlog.item import is_event_key
from chalicelib.insights.performance import InsightsQuery
from chalicelib.resources import Resources
from chalicelib.training.als import AlsParameters
from chalicelib.training.sources.movielens import SAMPLE_RATINGS
from local_aws.demo import ensure_model, load_sample_events, replay_recent_activity
from local_aws.replay import BURST_PREFIX, REPLAY_PREFIX, burst_items
from tests.conftest import with_counters

QUICK = AlsParameters(factors=8, iterations=2)


@pytest.fixture
def sample(tmp_path):
    """The first 2 000 ratings of the bundled sample (the whole one takes half a minute to import)."""
    path = tmp_path / "u.data"
    path.write_text("".join(SAMPLE_RATINGS.read_text().splitlines(keepends=True)[:2000]))
    return path


def test_sample_import_then_training_from_the_event_log(dynamodb_resources, tmp_path, sample):
    marker = tmp_path / "imported.txt"

    load_sample_events(dynamodb_resources, marker, sample)
    imported = datetime.now(timezone.utc)
    version = ensure_model(dynamodb_resources, QUICK)

    artifact = dynamodb_resources.model_store.load(version)
    rows = [line.split("\t") for line in sample.read_text().splitlines()]
    assert dynamodb_resources.model_store.live_version() == version
    assert artifact.n_users == len({row[0] for row in rows})
    assert artifact.n_items == len({row[1] for row in rows})
    assert artifact.n_interactions == 2000
    # The model knows every event logged before its scan, the whole import included.
    assert imported <= datetime.fromisoformat(artifact.training_cutoff) + timedelta(seconds=1)
    assert marker.exists()


def test_a_live_model_is_left_alone(resources, make_tiny_artifact):
    live = resources.model_registry.publish(make_tiny_artifact())

    assert ensure_model(resources, QUICK) == live


def test_the_marker_skips_a_second_import(resources, tmp_path, sample):
    marker = tmp_path / "imported.txt"
    marker.write_text(f"{resources.settings.events_table}:{hashlib.sha256(sample.read_bytes()).hexdigest()}")

    load_sample_events(resources, marker, sample)

    assert resources.event_table.count() == 0


def test_the_replay_gives_the_insights_and_trending_something_to_show_and_writes_once(settings, tmp_path):
    """The sample replayed over the last 28 days and today's burst, through the event log and its counters."""
    resources = Resources(with_counters(settings))  # the demo's stage counts at ingest
    now = datetime.now(timezone.utc)
    replay_marker, burst_marker = tmp_path / "replayed.txt", tmp_path / "burst.txt"

    stored = replay_recent_activity(resources, replay_marker, burst_marker, now=now, ratings=60)

    ids = [record.event_id for record in resources.scan_table.scan() if is_event_key(record.record_key)]
    rows = resources.insights.content_performance.items(InsightsQuery(window="7d", limit=100))["items"]
    assert stored > 60 and rows and all(row["views"] > 0 or row["previous"]["views"] > 0 for row in rows)
    assert sum(row["views"] for row in rows) > 0
    trending = resources.insights.trending.top(10, now=now).item_ids
    assert trending and set(trending[:4]) == set(burst_items(SAMPLE_RATINGS))
    assert len(ids) == stored and all(event_id.startswith((REPLAY_PREFIX, BURST_PREFIX)) for event_id in ids)
    assert replay_marker.exists() and burst_marker.exists()
    # Without the markers everything is looked up again, and all of it is already stored.
    assert replay_recent_activity(resources, None, None, now=now + timedelta(minutes=5), ratings=60) == 0
