"""`make demo`: the sample enters DynamoDB through the write path, the model is trained from it."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from chalicelib.training.als import AlsParameters
from chalicelib.training.sources.movielens import SAMPLE_RATINGS
from local_aws.demo import ensure_model, load_sample_events

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
