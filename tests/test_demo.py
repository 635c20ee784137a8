"""`make demo` publishes a model: trained once, then re-published from its cache."""

from __future__ import annotations

from dataclasses import replace

from chalicelib.artifact import ModelStore
from chalicelib.aws import s3_client
from chalicelib.training.als import AlsParameters
from local_aws.demo import ensure_model

QUICK = AlsParameters(factors=8, iterations=2)


def store_for(settings):
    return ModelStore(s3_client(settings), settings.model_bucket, settings.model_prefix)


def test_first_run_trains_and_publishes_then_a_fresh_s3_gets_the_cached_model(settings, tmp_path):
    cache = tmp_path / "model"

    first = ensure_model(settings, cache, QUICK)

    assert store_for(settings).live_version() == first
    assert store_for(settings).load(first).n_interactions == 100_000
    assert (cache / "model.npz").exists()

    # The demo's S3 is in memory: the next start sees an empty bucket and must
    # publish the same cached version rather than train again.
    empty = replace(settings, model_bucket=settings.model_bucket + "-next")
    s3_client(empty).create_bucket(Bucket=empty.model_bucket)
    assert ensure_model(empty, cache, QUICK) == first
    assert store_for(empty).live_version() == first


def test_a_live_model_is_left_alone(settings, tmp_path, make_tiny_artifact):
    live = store_for(settings).publish(make_tiny_artifact())

    assert ensure_model(settings, tmp_path / "model", QUICK) == live
    assert not (tmp_path / "model").exists()


def test_changed_parameters_retrain_instead_of_reusing_the_cache(settings, tmp_path):
    cache = tmp_path / "model"
    first = ensure_model(settings, cache, QUICK)
    other = replace(settings, model_bucket=settings.model_bucket + "-other")
    s3_client(other).create_bucket(Bucket=other.model_bucket)

    second = ensure_model(other, cache, replace(QUICK, factors=4))

    assert second != first
    assert store_for(other).load(second).n_factors == 4
