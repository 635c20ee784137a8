"""From interaction events to a published model artifact."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Mapping

from chalicelib.artifact import ModelArtifact
from chalicelib.config import PROJECT_DIR
from chalicelib.events import EventRecord
from chalicelib.training.als import AlsParameters, als_artifact
from chalicelib.training.event_source import read_event_log, training_cutoff
from chalicelib.training.interactions import build_interactions, interaction_table
from chalicelib.training.movielens import Ratings, read_movielens_100k

#: MovieLens-100k, bundled with its licence for the demo and the tests.
SAMPLE_RATINGS = PROJECT_DIR / "data" / "movielens-100k" / "u.data"


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
    model: type[EventRecord], weights: Mapping[str, float], params: AlsParameters,
    progress: Callable[[int], None] = lambda n: None,
) -> ModelArtifact:
    """Train ALS on every event of the DynamoDB log (erased users left out).

    Raises
    ------
    ValueError
        When the log holds no usable event.
    """
    snapshot = read_event_log(model, progress)
    interactions = interaction_table(snapshot, weights).to_matrix()
    if interactions.n_interactions == 0:
        raise ValueError("the event log holds no event to train on")
    return als_artifact(interactions, params, training_cutoff(snapshot))
