"""Shared fixtures: the local AWS stack on free ports, settings, resources, models and an API client.

Nothing here can reach AWS: fake credentials are set for the whole session and
every client gets a 127.0.0.1 endpoint from its settings. Helpers and fakes
that are not fixtures live in ``tests/support.py``.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterator

import pytest

from chalicelib.config import Settings
from chalicelib.models.artifact import ModelArtifact
from chalicelib.models.registry import ModelRegistry
from chalicelib.resources import Resources, reset_app_resources
from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason
from tests.faults import FaultProxy
from tests.support import TEST_KEYS, client_for, skip_unless_ci, tiny_artifact

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

    The app turns the library's loggers into JSON lines on stdout when it starts; that is undone
    too, back to how the session found them (not to how the test found them: a module-scoped
    client started the app before the test, and its handler would otherwise outlive the module),
    so a CLI tested next logs as it does on its own. And the session's dynalite must still be alive:
    the first test after it died fails with its exit code and stderr, not only with connection errors.
    """
    yield
    reset_app_resources()
    for name, library in _library_loggers().items():
        handlers, propagate, level = _LOGGERS_AT_START.get(name, ([], True, logging.NOTSET))
        library.handlers, library.propagate = list(handlers), propagate
        library.setLevel(level)
    for server in list(_DYNALITES):
        report = server.death_report()
        if report:  # the first test to see it, named with its exit and stderr; the rest error on connections
            _DYNALITES.remove(server)
            pytest.fail(f"dynalite died during or before this test: {report}")


def _library_loggers() -> dict[str, logging.Logger]:
    """``chalicelib`` and every ``chalicelib.*`` logger created so far."""
    loggers = {name: logger for name, logger in logging.root.manager.loggerDict.items()
               if isinstance(logger, logging.Logger) and name.split(".")[0] == "chalicelib"}
    loggers.setdefault("chalicelib", logging.getLogger("chalicelib"))
    return loggers


_LOGGERS_AT_START = {name: (list(library.handlers), library.propagate, library.level)
                     for name, library in _library_loggers().items()}


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
    _DYNALITES.append(server)
    yield server
    if server in _DYNALITES:
        _DYNALITES.remove(server)
    server.stop()


#: The session's dynalite once started: every test's teardown checks it is still alive.
_DYNALITES: list[DynaliteServer] = []


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


def _test_settings(moto_server: MotoServer) -> Settings:
    return Settings(
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
        # Off, and no counters table: a table more per test cost the suite minutes, and counting at
        # every POST /events more. The insight tests turn counting on (with_counters).
        insights_counters="off",
        **TEST_KEYS,
    )


def with_counters(config: Settings) -> Settings:
    """*config* with the insight counters kept at ingest, their table created."""
    counting = replace(config, insights_counters="ingest")
    Resources(counting).provision()
    return counting


@pytest.fixture
def settings(moto_server: MotoServer) -> Settings:
    """Settings naming a fresh bucket and event table on moto (both created)."""
    config = _test_settings(moto_server)
    Resources(config).provision()
    return config


@pytest.fixture(scope="module")
def module_settings(moto_server: MotoServer) -> Settings:
    """Like ``settings``, shared by the tests of one module that set their data up once and then read it."""
    config = _test_settings(moto_server)
    Resources(config).provision()
    return config


@pytest.fixture
def bucket_settings(moto_server: MotoServer) -> Settings:
    """Like ``settings`` with only the bucket created, for tests of S3 alone (the tables take a second)."""
    config = _test_settings(moto_server)
    Resources(config).model_registry.ensure_bucket(config.region)
    return config


@pytest.fixture
def dynamodb_settings(settings: Settings, dynamodb_endpoint: str) -> Settings:
    """Like ``settings`` with DynamoDB on each emulator in turn, bucket and table provisioned."""
    config = replace(settings, dynamodb_endpoint_url=dynamodb_endpoint)
    Resources(config).provision()
    return config


@pytest.fixture(scope="module")
def module_dynamodb_settings(moto_server: MotoServer, dynamodb_endpoint: str) -> Settings:
    """Like ``dynamodb_settings``, created once per module and emulator (a second or more saved per test):
    for tests that keep to keys of their own."""
    config = replace(_test_settings(moto_server), dynamodb_endpoint_url=dynamodb_endpoint)
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


@dataclass(frozen=True)
class ServedSample:
    """The sample model and catalog served over real HTTP by `chalice local`."""

    base_url: str
    settings: Settings
    resources: Resources
    origin: str

    def token_for(self, user_id: str) -> str:
        """A user token of this stage for *user_id*."""
        return self.resources.user_tokens.sign(user_id, 3600)


@pytest.fixture(scope="session")
def served_sample(moto_server: MotoServer, dynalite_server: DynaliteServer | None, sample_artifact: ModelArtifact,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedSample]:
    """`chalice local` on a free port, serving ``sample_artifact`` and the MovieLens catalog.

    For the tests that drive the API as its clients do (a browser page, an MCP
    server): real HTTP, real time, DynamoDB on dynalite where Node.js runs.
    Its publishable key (``PUBLISHABLE_KEY``) allows pages of the server's own origin. Without
    autoreload, chalice serves from the process started here, which the end of the session stops
    (with it, a second process polls the files and outlives the first).
    """
    import subprocess
    import sys

    from chalicelib.access.keys import hash_key
    from chalicelib.catalog.formats import import_file as import_catalog_file
    from chalicelib.config import PUBLISHABLE, ApiKeyConfig
    from local_aws.demo import SAMPLE_CATALOG
    from local_aws.stack import free_port, wait_until_listening
    from tests.support import PUBLISHABLE_KEY, write_stage_config

    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    dynamodb_url = dynalite_server.url if dynalite_server is not None else moto_server.url
    config = Settings(
        model_bucket=_unique("served"), model_prefix="models", events_table=_unique("served-events"),
        region="us-east-1", s3_endpoint_url=moto_server.url, dynamodb_endpoint_url=dynamodb_url,
        model_refresh_seconds=60.0, log_level="WARNING", aws_connect_timeout_seconds=2.0,
        aws_read_timeout_seconds=5.0, request_deadline_seconds=20.0,
        **{**TEST_KEYS, "publishable_keys": (
            ApiKeyConfig("served-web", PUBLISHABLE, hash_key(PUBLISHABLE_KEY), frozenset({origin})),)},
    )
    resources = Resources(config)
    resources.provision()
    resources.model_registry.publish(sample_artifact)
    summary = import_catalog_file(SAMPLE_CATALOG, "movielens-100k", resources.catalog)
    assert not summary.rejected, summary
    project = tmp_path_factory.mktemp("served")
    for name in ("app.py", "chalicelib"):
        (project / name).symlink_to(Path(__file__).resolve().parents[1] / name)
    write_stage_config(project, "served", config)
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("chalice")), "local", "--no-autoreload", "--stage", "served", "--host", "127.0.0.1",
         "--port", str(port)],
        cwd=project, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_listening(port, timeout=60, process=process)
        yield ServedSample(origin, config, resources, origin)
    finally:
        process.terminate()
        process.wait(timeout=10)


#: Popular items the ``sample_stack`` catalog blocks (besides every 11th).
BLOCKED_POPULAR = frozenset({"100", "181", "258"})


def _test_catalog_item(item):
    """The ``sample_stack`` catalog's version of a MovieLens item: a price, some unavailable or blocked."""
    from chalicelib.catalog.item import Price

    number = int(item.item_id)
    return replace(item, price=Price(float(number % 40) + 0.5, "EUR"), available=number % 7 != 0,
                   blocked=number % 11 == 0 or item.item_id in BLOCKED_POPULAR)


@pytest.fixture(scope="session")
def sample_stack(moto_server: MotoServer, dynalite_server: DynaliteServer | None, sample_artifact: ModelArtifact):
    """(settings, catalog by id): ``sample_artifact`` published, and a catalog of the MovieLens movies
    with test prices (0.5 to 39.5 EUR), every 7th item unavailable, every 11th and ``BLOCKED_POPULAR``
    blocked. Read-only: tests that change the catalog make their own. DynamoDB is dynalite where it runs:
    each test's app reads the whole catalog for its filter index, which moto takes seconds to scan."""
    from chalicelib.catalog.formats import READERS, CatalogImportSummary, check_row
    from local_aws.demo import SAMPLE_CATALOG

    config = Settings(
        model_bucket=_unique("sample"), model_prefix="models", events_table=_unique("sample-events"),
        region="us-east-1", s3_endpoint_url=moto_server.url,
        dynamodb_endpoint_url=dynalite_server.url if dynalite_server is not None else moto_server.url,
        model_refresh_seconds=60.0, log_level="WARNING", aws_connect_timeout_seconds=2.0,
        aws_read_timeout_seconds=5.0, request_deadline_seconds=20.0, **TEST_KEYS)
    resources = Resources(config)
    resources.provision()
    resources.model_registry.publish(sample_artifact)
    summary = CatalogImportSummary()
    rows = READERS["movielens-100k"](SAMPLE_CATALOG)
    items = [_test_catalog_item(item) for item in (check_row(number, raw, summary) for number, raw in rows)
             if item is not None]
    resources.catalog.put(items)
    return config, {item.item_id: item for item in items}


@pytest.fixture
def sample_client(sample_stack, tmp_path: Path) -> Iterator[object]:
    """An in-process client (secret key by default) of the ``sample_stack`` deployment."""
    with client_for(sample_stack[0], tmp_path) as client:
        yield client


@pytest.fixture
def sample_catalog(sample_stack) -> dict:
    """The ``sample_stack`` catalog's items, by id."""
    return sample_stack[1]


def spark_unavailable_reason() -> str | None:
    """Why the Spark engine cannot run here (None: it can)."""
    if importlib.util.find_spec("pyspark") is None:
        return "pyspark is not installed: `pip install -e '.[spark]'` (`make venv` does it)"
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        return "no Java: Spark needs Java 17 or newer (`apt-get install -y openjdk-17-jre-headless`)"
    return None


#: Tests that take the machine's cores run one after another in one pytest-xdist worker: Spark's (which
#: then starts its JVM once) and the load test, whose latencies a busy JVM beside it stretched past its limit.
CPU_HEAVY_GROUP = pytest.mark.xdist_group("cpu-heavy")


@pytest.fixture(scope="session")
def spark_engine() -> Iterator[object]:
    """The Spark engine on ``local[2]`` (skipped where Spark cannot run, except in CI, where that fails)."""
    skip_unless_ci("the Spark engine's tests", spark_unavailable_reason())
    from chalicelib.training.spark_als import SparkAlsEngine

    engine = SparkAlsEngine("local[2]", {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1",
                                         "spark.driver.bindAddress": "127.0.0.1", "spark.sql.shuffle.partitions": "1",
                                         # One ALS block and one data chunk: on test-sized data every extra
                                         # partition is only scheduling.
                                         "spark.default.parallelism": "1"})
    yield engine
    engine.close()

