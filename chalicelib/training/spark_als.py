"""ALS fitted by Spark MLlib (``implicitPrefs=True``): the engine for data beyond one machine.

The driver hands Spark the interaction triples in chunks of numpy arrays,
Spark fits across its executors, and the factors come back to the driver,
where the same evaluation and artifact code as for implicit takes over.

Spark's implicit ALS differs from implicit's in two conventions, which the
artifact records so that serving folds new events in the same way: the
confidence of an interaction of value ``r`` is ``1 + alpha * r`` (implicit:
``alpha * r``), and each user's and item's λ is multiplied by their number of
positive interactions (implicit: one λ for all).
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
from dataclasses import asdict
from typing import Any, Iterator, Mapping

import numpy as np
import scipy.sparse as sp

from chalicelib.training.als import AlsParameters, weigh_by_activity
from chalicelib.training.engine import TrainingEngine
from chalicelib.training.search import SearchSpace

logger = logging.getLogger(__name__)

#: The artifact's ``algorithm`` for models fitted by Spark.
SPARK_ALGORITHM = "spark-als"
#: Interactions per chunk the driver ships to Spark (three numpy arrays, about 16 bytes an interaction).
CHUNK_INTERACTIONS = 1_000_000
#: Settings for a session this engine starts itself (``spark-submit`` and EMR set their own).
_SESSION_DEFAULTS = {
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "8",
}

#: Spark's λ is per interaction (times each user's and item's count of positive interactions), so its
#: values are about a hundredth of implicit's. On a MovieLens-100k validation fold (seed 42), 64 factors,
#: alpha 6: λ/alpha 0.01 -> nDCG@10 0.215, 0.03 -> 0.229, 0.1 -> 0.263, 0.3 -> 0.227; at 0.1, alpha 2 -> 0.250
#: and alpha 16 -> 0.251. The grid spans that peak as implicit's spans its own.
SPARK_SEARCH_SPACE = SearchSpace(
    factors=(32, 64, 128),
    alpha=(2.0, 4.0, 6.0, 8.0, 12.0, 16.0),
    regularization_per_alpha=(0.05, 0.07, 0.1, 0.14, 0.2),
    iterations=(15, 30),
    # Spark's per-interaction λ already weighs users by their counts; β was measured with implicit only.
    activity_exponent=(0.0,),
)
SPARK_DEFAULTS = AlsParameters(factors=64, regularization=0.6, alpha=6.0, iterations=15, activity_exponent=0.0)


class SparkAlsEngine(TrainingEngine):
    """Spark MLlib ALS; the session starts on the first fit and stops on :meth:`close`.

    Parameters
    ----------
    master: the session's master (``local[2]``, ``yarn``...); None leaves it to
        ``spark-submit`` or the environment, else ``local[*]``.
    config: extra Spark settings for a session this engine starts.
    checkpoint_dir: where ALS checkpoints its factors every 10 iterations (an ``s3://`` or
        ``hdfs://`` address on a cluster). Without checkpoints the lineage of a long fit grows
        until Spark fails with a StackOverflowError; a local session uses a temporary folder.
    """

    name = "spark"
    algorithm = SPARK_ALGORITHM
    # MLlib's ALS cannot start from given factors: every fit starts from random ones.
    supports_warm_start = False

    def __init__(self, master: str | None = None, config: Mapping[str, str] | None = None,
                 checkpoint_dir: str | None = None) -> None:
        self._master = master
        self._checkpoint_dir = checkpoint_dir
        self._config = dict(config or {})
        self._session: Any = None
        self._owns_session = False
        self._temporary_checkpoints: str | None = None

    @property
    def search_space(self) -> SearchSpace:
        return SPARK_SEARCH_SPACE

    @property
    def default_parameters(self) -> AlsParameters:
        return SPARK_DEFAULTS

    def artifact_hyperparameters(self, params: AlsParameters) -> dict[str, Any]:
        return {**asdict(params), "confidence_offset": 1, "regularization_scaling": "interactions"}

    @property
    def session(self) -> Any:
        """The Spark session (started on first use)."""
        if self._session is None:
            from pyspark.sql import SparkSession

            # A session already running (spark-submit's, a notebook's) is used and left running.
            self._owns_session = SparkSession.getActiveSession() is None
            builder = SparkSession.builder.appName("recommender-retrain")
            if self._master:
                builder = builder.master(self._master)
            if (self._master or "local").startswith("local"):
                # Local executors run this interpreter (with numpy), not whichever python3 is on PATH.
                builder = builder.config("spark.pyspark.python", sys.executable)
            # Our defaults only for a session we start: on a running one (spark-submit's, EMR's) the builder
            # would overwrite its runtime settings, such as its shuffle partitions.
            settings = {**_SESSION_DEFAULTS, **self._config} if self._owns_session else self._config
            for key, value in settings.items():
                builder = builder.config(key, value)
            self._session = builder.getOrCreate()
            context = self._session.sparkContext
            context.setLogLevel("ERROR")
            if self._checkpoint_dir:
                context.setCheckpointDir(self._checkpoint_dir)
            elif context.getCheckpointDir() is None:
                if context.master.startswith("local"):
                    self._temporary_checkpoints = tempfile.mkdtemp(prefix="spark-als-checkpoints-")
                    context.setCheckpointDir(self._temporary_checkpoints)
                else:
                    logger.warning("no Spark checkpoint directory: fits of many iterations may fail with a "
                                   "StackOverflowError (pass --spark-checkpoint-dir s3://...)")
        return self._session

    def fit(self, matrix: sp.csr_matrix, params: AlsParameters,
            start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Fit on *matrix* (values are interaction strengths); *start* is refused (no warm start)."""
        if start is not None:
            raise ValueError("Spark's ALS cannot start from given factors")
        from pyspark.ml.recommendation import ALS

        n_users, n_items = matrix.shape
        # Users weighed by their activity as the implicit engine weighs them (serving folds in alike).
        ratings = self._ratings(weigh_by_activity(matrix, params.activity_exponent)).persist()
        try:
            blocks = max(1, self.session.sparkContext.defaultParallelism)
            model = ALS(
                rank=params.factors, maxIter=params.iterations, regParam=params.regularization, alpha=params.alpha,
                implicitPrefs=True, nonnegative=False, seed=params.random_state,
                numUserBlocks=blocks, numItemBlocks=blocks,
                userCol="user", itemCol="item", ratingCol="strength",
            ).fit(ratings)
            user_factors = _dense(model.userFactors.collect(), n_users, params.factors)
            item_factors = _dense(model.itemFactors.collect(), n_items, params.factors)
        finally:
            ratings.unpersist()
        return user_factors, item_factors

    def _ratings(self, matrix: sp.csr_matrix) -> Any:
        """The matrix's entries as a DataFrame (user, item, strength), shipped in chunks of numpy arrays."""
        from pyspark.sql.types import FloatType, IntegerType, StructField, StructType

        coo = matrix.tocoo()
        users, items = coo.row.astype(np.int32), coo.col.astype(np.int32)
        strengths = coo.data.astype(np.float32)
        context = self.session.sparkContext
        count = max(context.defaultParallelism, -(-users.shape[0] // CHUNK_INTERACTIONS))
        chunks = list(zip(np.array_split(users, count), np.array_split(items, count), np.array_split(strengths, count)))
        schema = StructType([StructField("user", IntegerType(), False), StructField("item", IntegerType(), False),
                             StructField("strength", FloatType(), False)])

        # Defined here so that it is shipped by value: executors need numpy, not this package.
        def triples(chunk: tuple[np.ndarray, np.ndarray, np.ndarray]) -> Iterator[tuple[int, int, float]]:
            return zip(*(column.tolist() for column in chunk))

        return self.session.createDataFrame(context.parallelize(chunks, len(chunks)).flatMap(triples), schema)

    def close(self) -> None:
        """Stop the session, if this engine started it."""
        if self._session is not None and self._owns_session:
            self._session.stop()
        self._session = None
        if self._temporary_checkpoints:
            shutil.rmtree(self._temporary_checkpoints, ignore_errors=True)
            self._temporary_checkpoints = None


def _dense(rows: list[Any], count: int, factors: int) -> np.ndarray:
    """Spark's (id, features) rows as a (count, factors) float32 matrix; ids it has no row for stay zero."""
    dense = np.zeros((count, factors), dtype=np.float32)
    if rows:
        ids = np.fromiter((row["id"] for row in rows), dtype=np.int64, count=len(rows))
        dense[ids] = np.asarray([row["features"] for row in rows], dtype=np.float32)
    return dense
