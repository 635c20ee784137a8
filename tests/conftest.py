"""Shared fixtures: the local AWS stack on free ports, settings, resources, models and an API client.

Nothing here can reach AWS: fake credentials are set for the whole session and
every client gets a 127.0.0.1 endpoint from its settings. Helpers and fakes
that are not fixtures live in ``tests/support.py``.
"""

from __future__ import annotations

import logging
import os
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import pytest

from chalicelib.config import Settings
from chalicelib.models.artifact import ModelArtifact
from chalicelib.models.registry import ModelRegistry
from chalicelib.resources import Resources, reset_app_resources
from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason
from tests.faults import FaultProxy
from tests.support import TEST_KEYS, client_for, tiny_artifact

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


@pytest.fixture(autouse=True)
def fresh_connections() -> Iterator[None]:
    """Each test builds its own clients: none is kept past its test, so memory stays flat.

    The app turns the library's loggers into JSON lines on stdout when it starts; that is
    undone too, so a CLI tested next logs as it does on its own.
    """
    library = logging.getLogger("chalicelib")
    saved = (list(library.handlers), library.propagate, library.level)
    yield
    reset_app_resources()
    library.handlers, library.propagate = saved[0], saved[1]
    library.setLevel(saved[2])


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
        # The emulators are far slower than DynamoDB, more so on a loaded CI machine: generous
        # timeouts, except where a test injects a fault and sets its own.
        aws_connect_timeout_seconds=2.0,
        aws_read_timeout_seconds=5.0,
        request_deadline_seconds=20.0,
        **TEST_KEYS,
    )
    Resources(config).provision()
    return config


@pytest.fixture
def dynamodb_settings(settings: Settings, dynamodb_endpoint: str) -> Settings:
    """Like ``settings`` with DynamoDB on each emulator in turn, bucket and table provisioned."""
    config = replace(settings, dynamodb_endpoint_url=dynamodb_endpoint)
    Resources(config).provision()
    return config


@pytest.fixture
def resources(settings: Settings) -> Resources:
    """The clients and stores of ``settings``."""
    return Resources(settings)


@pytest.fixture
def dynamodb_resources(dynamodb_settings: Settings) -> Resources:
    """The clients and stores of ``dynamodb_settings`` (each DynamoDB emulator in turn)."""
    return Resources(dynamodb_settings)


@pytest.fixture
def model_registry(resources: Resources) -> ModelRegistry:
    return resources.model_registry


@pytest.fixture(scope="session")
def sample_artifact() -> ModelArtifact:
    """ALS trained on the bundled MovieLens-100k sample (small and quick)."""
    from chalicelib.training.als import AlsParameters
    from chalicelib.training.train import train_sample_model

    return train_sample_model(AlsParameters(factors=16, iterations=5))


@pytest.fixture
def api_client(settings: Settings, tmp_path: Path) -> Iterator[object]:
    """A ``chalice.test.Client`` for the app, configured (through its stage file) for ``settings``."""
    with client_for(settings, tmp_path) as client:
        yield client


@pytest.fixture
def events_client(dynamodb_settings: Settings, tmp_path: Path) -> Iterator[object]:
    """Like ``api_client``, with DynamoDB on each emulator in turn."""
    with client_for(dynamodb_settings, tmp_path) as client:
        yield client


@pytest.fixture
def make_tiny_artifact():
    """The :func:`tests.support.tiny_artifact` factory, for tests that vary one field."""
    return tiny_artifact


@pytest.fixture
def s3_proxy(moto_server: MotoServer) -> Iterator[FaultProxy]:
    """A :class:`tests.faults.FaultProxy` in front of moto's S3, to break the network under a client."""
    with FaultProxy(moto_server.url) as proxy:
        yield proxy


@pytest.fixture
def dynamodb_proxy(dynamodb_endpoint: str) -> Iterator[FaultProxy]:
    """A :class:`tests.faults.FaultProxy` in front of each DynamoDB emulator in turn."""
    with FaultProxy(dynamodb_endpoint) as proxy:
        yield proxy


@pytest.fixture
def faulty_settings(dynamodb_settings: Settings, s3_proxy: FaultProxy, dynamodb_proxy: FaultProxy) -> Settings:
    """``dynamodb_settings`` reaching S3 and DynamoDB through ``s3_proxy`` and ``dynamodb_proxy``.

    Provisioned directly, before any fault: a test breaks only the calls it means to.
    """
    return replace(dynamodb_settings, s3_endpoint_url=s3_proxy.url, dynamodb_endpoint_url=dynamodb_proxy.url)
