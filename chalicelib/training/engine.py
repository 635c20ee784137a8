"""Training engines: what fits ALS factors on a user × item matrix.

``implicit`` fits on one machine (the default); ``spark`` fits with Spark MLlib,
on a cluster or ``local[N]``. Everything around the fit (reading, the split,
the search, the evaluation, the gate, the artifact and its publication) is the
same code for both, in :mod:`chalicelib.training.retrain`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict
from datetime import datetime
from typing import Any, Mapping

import numpy as np
import scipy.sparse as sp

from chalicelib.models.artifact import ModelArtifact
from chalicelib.training.als import IMPLICIT_ALGORITHM, AlsParameters, fit_als, package_artifact
from chalicelib.training.interactions import InteractionMatrix
from chalicelib.training.search import SearchSpace

#: The engines ``--engine`` accepts.
ENGINE_NAMES = ("implicit", "spark")


class TrainingEngine(ABC):
    """Fits ALS factors; one instance may hold resources (a Spark session) until :meth:`close`."""

    #: ``--engine`` name.
    name: str
    #: The artifact's ``algorithm``.
    algorithm: str
    #: Whether :meth:`fit` can start from given factors (a refit warm-started from the evaluated candidate).
    supports_warm_start: bool = False

    @abstractmethod
    def fit(self, matrix: sp.csr_matrix, params: AlsParameters,
            start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(user_factors, item_factors), float32, one row per row and column of *matrix* (zeros where empty)."""

    @property
    @abstractmethod
    def search_space(self) -> SearchSpace:
        """The grid the retrain's search samples for this engine (λ means different things in each)."""

    @property
    @abstractmethod
    def default_parameters(self) -> AlsParameters:
        """The configuration used when nothing is searched and no live model of this engine exists."""

    def artifact_hyperparameters(self, params: AlsParameters) -> dict[str, Any]:
        """What the artifact records: *params*, plus how serving must fold new events in."""
        return asdict(params)

    def artifact(self, interactions: InteractionMatrix, params: AlsParameters, training_cutoff: datetime | None,
                 metrics: dict[str, Any] | None = None, start: tuple[np.ndarray, np.ndarray] | None = None,
                 fit_params: AlsParameters | None = None) -> ModelArtifact:
        """Fit on *interactions* and package the artifact (see :func:`chalicelib.training.als.als_artifact`).

        *start* and *fit_params* (a warm start) are ignored by an engine that cannot warm-start:
        it fits from scratch with *params*.
        """
        if not self.supports_warm_start:
            start, fit_params = None, None
        user_factors, item_factors = self.fit(interactions.matrix, fit_params or params, start)
        return package_artifact(interactions, user_factors, item_factors, self.algorithm,
                                self.artifact_hyperparameters(params), training_cutoff, metrics)

    def close(self) -> None:  # noqa: B027 - most engines hold nothing; the ones that do override it
        """Release what the engine holds (nothing, unless it says otherwise)."""

    def __enter__(self) -> TrainingEngine:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class ImplicitEngine(TrainingEngine):
    """implicit's multithreaded CPU ALS, on this machine."""

    name = "implicit"
    algorithm = IMPLICIT_ALGORITHM
    supports_warm_start = True

    def fit(self, matrix: sp.csr_matrix, params: AlsParameters,
            start: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        return fit_als(matrix, params, start)

    @property
    def search_space(self) -> SearchSpace:
        return SearchSpace()

    @property
    def default_parameters(self) -> AlsParameters:
        return AlsParameters()


#: The single-machine engine; it holds nothing, so one instance serves everyone.
IMPLICIT = ImplicitEngine()


def training_engine(name: str, spark_master: str | None = None, spark_config: Mapping[str, str] | None = None,
                    spark_checkpoint_dir: str | None = None) -> TrainingEngine:
    """The engine called *name* (one of :data:`ENGINE_NAMES`).

    *spark_master* / *spark_config* / *spark_checkpoint_dir*: the Spark session's master (None:
    what ``spark-submit`` or the environment sets, else ``local[*]``), extra settings, and where
    ALS checkpoints (see :class:`~chalicelib.training.spark_als.SparkAlsEngine`).
    """
    if name == "implicit":
        return IMPLICIT
    if name == "spark":
        # pyspark is imported only by whoever asks for Spark.
        from chalicelib.training.spark_als import SparkAlsEngine

        return SparkAlsEngine(spark_master, spark_config, spark_checkpoint_dir)
    raise ValueError(f"unknown training engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


def engine_for_algorithm(algorithm: str, current: TrainingEngine) -> TrainingEngine | None:
    """The engine that can refit a model of *algorithm* here: *current*, implicit, or None."""
    if algorithm == current.algorithm:
        return current
    if algorithm == IMPLICIT.algorithm:
        return IMPLICIT
    return None
