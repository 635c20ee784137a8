"""Training once with given hyperparameters, without evaluation or a quality gate.

What ``scripts/train.py`` and the demo run; the pipeline that searches,
evaluates and gates is :mod:`chalicelib.training.retrain`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from chalicelib.errors import NoInteractions
from chalicelib.eventlog.item import EventRecord
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.models.artifact import ModelArtifact
from chalicelib.training.als import AlsParameters, als_artifact
from chalicelib.training.event_arrays import training_cutoff
from chalicelib.training.interactions import build_interactions, interaction_table
from chalicelib.training.sources.movielens import SAMPLE_RATINGS, Ratings, read_movielens_100k
from chalicelib.training.sources.scan import read_event_log


def train_from_ratings(ratings: Ratings, params: AlsParameters) -> ModelArtifact:
    """Train ALS treating every rating as one implicit interaction.

    The training cutoff is the time of the latest rating.
    """
    interactions = build_interactions(ratings.user_ids, ratings.item_ids)
    cutoff = datetime.fromtimestamp(int(ratings.timestamps.max()), tz=timezone.utc) if ratings.timestamps.size else None
    return als_artifact(interactions, params, cutoff)


def train_sample_model(params: AlsParameters | None = None, path: Path = SAMPLE_RATINGS) -> ModelArtifact:
    """The demo model: ALS on the bundled MovieLens-100k ratings."""
    return train_from_ratings(read_movielens_100k(path), params or AlsParameters())


def train_from_event_log(
    model: type[EventRecord], weights: Mapping[str, float] | EventWeighting, params: AlsParameters,
    progress: Callable[[int], None] = lambda n: None,
) -> ModelArtifact:
    """Train ALS on every event of the DynamoDB log (erased users left out).

    Raises
    ------
    NoInteractions
        When the log holds no usable event.
    """
    snapshot = read_event_log(model, progress)
    interactions = interaction_table(snapshot, weights).to_matrix()
    if interactions.n_interactions == 0:
        raise NoInteractions("the event log holds no event to train on")
    return als_artifact(interactions, params, training_cutoff(snapshot))
