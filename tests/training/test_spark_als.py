"""The Spark engine: what serving folds in matches what Spark trained, no warm start, and the retrain on moto S3."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.serving.recommender import Recommender
from chalicelib.training.als import AlsParameters
from chalicelib.training.interactions import build_interactions
from chalicelib.training.retrain import retrain
from tests.conftest import CPU_HEAVY_GROUP
from tests.training.test_retrain import GOOD, WEIGHTS, options, read_grouped

pytestmark = CPU_HEAVY_GROUP

SPARK_GOOD = AlsParameters(factors=4, regularization=0.001, alpha=8.0, iterations=5, activity_exponent=0.0)  # as SPARK_DEFAULTS


def test_a_session_fold_in_of_a_users_items_gives_the_factors_spark_trained(spark_engine):
    """Real-time answers for Spark models rely on fold-in following Spark's conventions exactly."""
    rng = np.random.default_rng(7)
    users, items = zip(*{(f"u{rng.integers(30)}", f"i{rng.integers(25)}") for _ in range(200)}, strict=True)
    interactions = build_interactions(list(users), list(items))
    artifact = spark_engine.artifact(interactions, AlsParameters(factors=6, regularization=0.05, alpha=3.0,
                                                                 iterations=8), None)
    recommender = Recommender(artifact)

    for row in range(0, artifact.n_users, 5):
        seen = artifact.item_ids[artifact.seen_indices[artifact.seen_indptr[row]:artifact.seen_indptr[row + 1]]]
        profile = recommender.profile_for_session(seen.tolist())  # one interaction of value 1 each, as trained
        np.testing.assert_allclose(profile.vector, artifact.user_factors[row], rtol=1e-3, atol=1e-5)


def test_spark_cannot_warm_start_so_the_artifact_is_fitted_from_scratch(spark_engine):
    interactions = build_interactions(["u1", "u1", "u2"], ["a", "b", "a"])
    start = (np.ones((2, 4), dtype=np.float32), np.ones((2, 4), dtype=np.float32))

    with pytest.raises(ValueError, match="cannot start from given factors"):
        spark_engine.fit(interactions.matrix, SPARK_GOOD, start)
    artifact = spark_engine.artifact(interactions, SPARK_GOOD, None, start=start,
                                     fit_params=AlsParameters(factors=4, iterations=1))
    assert artifact.hyperparameters["iterations"] == SPARK_GOOD.iterations and not np.all(artifact.user_factors == 1)


def test_a_spark_retrain_is_evaluated_gated_and_published_like_an_implicit_one(spark_engine, model_registry):
    first = retrain(read_grouped, model_registry, WEIGHTS, options())  # implicit's model goes live
    assert first.published

    result = retrain(read_grouped, model_registry, WEIGHTS, options(start=SPARK_GOOD), engine=spark_engine)

    assert result.published and result.version == model_registry.live_version()
    metrics = model_registry.read_manifest(result.version)["metrics"]
    assert metrics["engine"] == "spark"
    # The live implicit model is refitted by implicit on the same split: a like-for-like comparison.
    assert metrics["live_engine"] == "implicit" and metrics["live_parameters"]["regularization"] == GOOD.regularization
    assert metrics["candidate"]["ndcg@10"] > metrics["popularity"]["ndcg@10"] + 0.1
    assert "refit" not in metrics  # no warm start: the published model is fitted from scratch
    artifact = model_registry.load(result.version)
    assert artifact.algorithm == "spark-als" and artifact.hyperparameters["regularization"] == 0.001
    assert artifact.fold_in_conventions == {"confidence_offset": 1.0, "scale_regularization": True}
    # u00 clicked only the first group's items (i00..i19): so do its recommendations.
    recommender = Recommender(artifact)
    answer = recommender.recommend(recommender.profile_for_user("u00"), 5)
    assert all(item < "i20" for item in answer.item_ids)

    again = retrain(read_grouped, model_registry, WEIGHTS, options(start=None, budget=0), engine=spark_engine)
    # The live Spark model's configuration is what a search-less Spark retrain refits.
    assert again.chosen == SPARK_GOOD and again.metrics["live_engine"] == "spark"


def test_a_running_session_keeps_its_own_settings(spark_engine):
    """On spark-submit's or EMR's session the engine must not overwrite what the job was given."""
    from chalicelib.training.spark_als import SparkAlsEngine

    running = spark_engine.session
    before = running.conf.get("spark.sql.shuffle.partitions")
    running.conf.set("spark.sql.shuffle.partitions", "3")  # as a job's --conf would have set it
    try:
        engine = SparkAlsEngine()
        assert engine.session is running
        assert running.conf.get("spark.sql.shuffle.partitions") == "3"
        engine.close()  # not its session: left running
        assert running.sparkContext._jsc is not None
    finally:
        running.conf.set("spark.sql.shuffle.partitions", before)
