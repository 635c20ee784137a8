"""Shared fixtures: the local AWS stack on free ports, settings, models and an API client.

Nothing here can reach AWS: fake credentials are set for the whole session and
every client gets a 127.0.0.1 endpoint from its settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from chalicelib.artifact import ModelArtifact, ModelStore, make_artifact
from chalicelib.aws import s3_client
from chalicelib.config import Settings, environment_of
from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason, provision

DYNAMODB_ENGINES = ["dynalite", "moto"]


@pytest.fixture(scope="session", autouse=True)
def fake_aws_credentials() -> Iterator[None]:
    """Fake keys and no profile, so a mistake can never reach real AWS."""
    saved = {key: os.environ.get(key) for key in [*FAKE_CREDENTIALS, "AWS_PROFILE", "AWS_DEFAULT_REGION"]}
    os.environ.update(FAKE_CREDENTIALS)
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_PROFILE", None)
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """One moto server for the session (S3, and DynamoDB for the moto runs)."""
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def dynalite_server() -> Iterator[DynaliteServer | None]:
    """dynalite in memory on a free port, or None where it cannot run."""
    if dynalite_unavailable_reason() is not None:
        yield None
        return
    server = DynaliteServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session", params=DYNAMODB_ENGINES)
def dynamodb_endpoint(request: pytest.FixtureRequest, moto_server: MotoServer) -> str:
    """Endpoint URL of each DynamoDB emulator in turn, so no test relies on one's leniency."""
    if request.param == "moto":
        return moto_server.url
    server = request.getfixturevalue("dynalite_server")
    if server is None:
        pytest.skip(f"dynalite unavailable: {dynalite_unavailable_reason()}")
    return server.url


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def settings(moto_server: MotoServer) -> Settings:
    """Settings naming a fresh bucket and event table on moto (both created)."""
    config = Settings(
        model_bucket=_unique("models"),
        model_prefix="models",
        events_table=_unique("events"),
        region="us-east-1",
        s3_endpoint_url=moto_server.url,
        dynamodb_endpoint_url=moto_server.url,
        model_refresh_seconds=0.0,
        log_level="INFO",
        event_retry_base_seconds=0.001,
    )
    provision(config)
    return config


@pytest.fixture
def dynamodb_settings(settings: Settings, dynamodb_endpoint: str) -> Settings:
    """Like ``settings`` with DynamoDB on each emulator in turn, bucket and table provisioned."""
    from dataclasses import replace

    config = replace(settings, dynamodb_endpoint_url=dynamodb_endpoint)
    provision(config)
    return config


@pytest.fixture
def model_store(settings: Settings) -> ModelStore:
    return ModelStore(s3_client(settings), settings.model_bucket, settings.model_prefix)


def tiny_artifact(**overrides: object) -> ModelArtifact:
    """A hand-checkable model: 3 users, 4 items, 2 factors.

    Item factors (rows i0..i3): (1,0), (0,1), (1,1), (2,0).
    User u0 = (1,0) saw i3; u1 = (0,1) saw nothing; u2 = (1,1) saw i0 and i2.
    """
    fields: dict[str, object] = dict(
        item_factors=np.array([[1, 0], [0, 1], [1, 1], [2, 0]], dtype=np.float32),
        user_factors=np.array([[1, 0], [0, 1], [1, 1]], dtype=np.float32),
        user_ids=["u0", "u1", "u2"],
        item_ids=["i0", "i1", "i2", "i3"],
        item_popularity=np.array([5, 1, 3, 2], dtype=np.float32),
        seen_indptr=np.array([0, 1, 1, 3]),
        seen_indices=np.array([3, 0, 2]),
        algorithm="test",
        hyperparameters={"regularization": 0.1, "alpha": 1.0},
        training_cutoff="2026-01-01T00:00:00+00:00",
    )
    fields.update(overrides)
    return make_artifact(**fields)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sample_artifact() -> ModelArtifact:
    """ALS trained on the bundled MovieLens-100k sample (small and quick)."""
    from chalicelib.training.als import AlsParameters
    from chalicelib.training.pipeline import train_sample_model

    return train_sample_model(AlsParameters(factors=16, iterations=5))


def write_stage_config(project_dir: Path, stage: str, settings: Settings) -> None:
    """A ``.chalice/config.json`` whose *stage* points at *settings*' resources."""
    env = environment_of(settings)
    config = {"version": "2.0", "app_name": "recommender-api", "stages": {stage: {"environment_variables": env}}}
    (project_dir / ".chalice").mkdir(parents=True, exist_ok=True)
    (project_dir / ".chalice" / "config.json").write_text(json.dumps(config))


def _clear_app_caches() -> None:
    import app

    for getter in (app.settings, app.live_model, app.event_log, app.event_rules, app.user_recommender):
        getter.cache_clear()


@contextlib.contextmanager
def _client_for(settings: Settings, project_dir: Path) -> Iterator[object]:
    from chalice.test import Client

    import app

    write_stage_config(project_dir, "test", settings)
    _clear_app_caches()
    try:
        with Client(app.app, stage_name="test", project_dir=str(project_dir)) as client:
            yield client
    finally:
        _clear_app_caches()


@pytest.fixture
def api_client(settings: Settings, tmp_path: Path) -> Iterator[object]:
    """A ``chalice.test.Client`` for the app, configured (through its stage file) for ``settings``."""
    with _client_for(settings, tmp_path) as client:
        yield client


@pytest.fixture
def events_client(dynamodb_settings: Settings, tmp_path: Path) -> Iterator[object]:
    """Like ``api_client``, with DynamoDB on each emulator in turn."""
    with _client_for(dynamodb_settings, tmp_path) as client:
        yield client


@pytest.fixture
def make_tiny_artifact():
    """The :func:`tiny_artifact` factory, for tests that vary one field."""
    return tiny_artifact
