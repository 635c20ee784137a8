"""The one place that builds clients and stores from settings, and keeps them.

The app, the scripts, the demo and the tests all get their S3 client, model
store and registry, event log and live model from a :class:`Resources`; the
app's instance (:func:`app_resources`) lives as long as the warm Lambda and
:func:`reset_app_resources` drops it (tests, benchmarks). Connections are
shared by every instance of the process that names the same endpoint and
timeouts: a botocore client costs a tenth of a second or more to build.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import threading
from datetime import timedelta
from typing import Any, Callable

import boto3
import botocore.loaders
import botocore.session
from botocore.config import Config
from pynamodb.connection import TableConnection

from chalicelib import telemetry
from chalicelib.access.control import AccessControl
from chalicelib.access.keys import KeyRing
from chalicelib.access.rate_limit import RateLimiter
from chalicelib.access.signing_secrets import SigningSecrets
from chalicelib.access.tokens import UserTokens
from chalicelib.catalog.cache import CatalogCache
from chalicelib.catalog.index import CatalogIndexCache
from chalicelib.catalog.item import CatalogRecord, catalog_model
from chalicelib.catalog.store import Catalog
from chalicelib.config import (
    COUNTERS_INGEST,
    COUNTERS_OFF,
    COUNTERS_STREAM,
    DEFAULT_EVENT_WEIGHTS,
    Settings,
    load_settings,
)
from chalicelib.deadlines import Deadline
from chalicelib.eventlog.batch_writer import BatchWriter
from chalicelib.eventlog.item import EventRecord, ensure_table, event_model, table_connection
from chalicelib.eventlog.log import EventLog
from chalicelib.eventlog.rules import EventRules
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.insights.audiences import Audiences
from chalicelib.insights.counter_reader import CounterReader
from chalicelib.insights.counter_writer import CounterWriter
from chalicelib.insights.counters import CounterRecord, counter_connection, counter_model, ensure_counter_table
from chalicelib.insights.performance import ContentPerformance
from chalicelib.insights.segments import Segments
from chalicelib.insights.stream import StreamBatch, count_stream_batch
from chalicelib.insights.trending import Trending
from chalicelib.jobs.retrain import RetrainJob, retrain_job
from chalicelib.models.registry import ModelRegistry
from chalicelib.models.store import ModelStore
from chalicelib.serving.answers import Answers
from chalicelib.serving.filters import ItemFilters
from chalicelib.serving.live_model import LiveModel
from chalicelib.serving.personalizer import Personalizer


def share_botocore_data() -> None:
    """Make every botocore session of the process share one loader of botocore's own data files.

    Each new botocore session parses botocore's endpoint and service JSON again (0.1 to 0.3 s), and
    pynamodb opens a session per table connection and thread, with no way to hand it one: a cold
    instance's first answer paid that for every table it read. The files are read-only data shipped
    with botocore, which already shares one loader's parsed files between a session's clients; a
    loader per data path keeps ``AWS_DATA_PATH`` working. Idempotent; runs when this module loads.
    """
    if botocore.session.create_loader is not _shared_loader:
        botocore.session.create_loader = _shared_loader


_shared_loader = functools.cache(botocore.loaders.create_loader)
share_botocore_data()

# Scripts' S3 client: uploads of large models and listings may be slow; botocore's
# standard retry mode (exponential backoff with jitter) covers passing faults.
_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=10,
    retries={"max_attempts": 4, "mode": "standard"},
)
#: The serving path's calls to AWS get AWS_CONNECT_TIMEOUT_SECONDS + AWS_READ_TIMEOUT_SECONDS
#: (0.5 + 1.5 s by default): a healthy call answers in milliseconds, and a sick one must fit in the
#: request's deadline (REQUEST_DEADLINE_SECONDS). A read timeout bounds each wait for bytes, so a
#: large model still downloads on a cold start. S3 and Secrets Manager reads get one attempt: a
#: cold instance answers 503 with Retry-After rather than wait out botocore's backoff, and a warm
#: one retries at its next refresh.
def _serving_config(connect_timeout: float, read_timeout: float) -> Config:
    return Config(connect_timeout=connect_timeout, read_timeout=read_timeout,
                  retries={"total_max_attempts": 1, "mode": "standard"},
                  # The manifest's sha256 already checks model.npz end to end; botocore's CRC of the
                  # response would be a second pass over it (a tenth of a second for 263 MB).
                  response_checksum_validation="when_required")


#: A full Scan of the log (training) may take far longer per page than requests may.
SCAN_READ_TIMEOUT_SECONDS = 300


class Resources:
    """Clients and stores of one stage, each built on first use and kept.

    Parameters
    ----------
    settings: the validated stage settings naming the bucket, table and endpoints.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @functools.cached_property
    def s3(self) -> Any:
        """The S3 client (the configured endpoint when set, AWS otherwise)."""
        return _s3_client(self.settings.region, self.settings.s3_endpoint_url)

    @functools.cached_property
    def model_store(self) -> ModelStore:
        """Read-only access to the published models: what serving needs, with its tight timeouts."""
        config = self.settings
        serving_s3 = _s3_client(config.region, config.s3_endpoint_url,
                                (config.aws_connect_timeout_seconds, config.aws_read_timeout_seconds))
        return ModelStore(serving_s3, self.settings.model_bucket, self.settings.model_prefix)

    @functools.cached_property
    def model_registry(self) -> ModelRegistry:
        """Publishing, listing, pruning and rolling back model versions."""
        return ModelRegistry(self.s3, self.settings.model_bucket, self.settings.model_prefix)

    @functools.cached_property
    def event_table(self) -> type[EventRecord]:
        """The event table for writes and erasure: API timeouts, no retries of its own (callers
        retry within their deadline)."""
        config = self.settings
        return _event_table(config.events_table, config.region, config.dynamodb_endpoint_url,
                            connect_timeout=config.aws_connect_timeout_seconds,
                            read_timeout=config.aws_read_timeout_seconds, retries=0)

    @functools.cached_property
    def scan_table(self) -> type[EventRecord]:
        """The event table for full scans (training), with a long read timeout."""
        config = self.settings
        return _event_table(config.events_table, config.region, config.dynamodb_endpoint_url,
                            read_timeout=SCAN_READ_TIMEOUT_SECONDS)

    @functools.cached_property
    def event_log(self) -> EventLog:
        """The event log; its real-time reader has short timeouts and no retries."""
        config = self.settings
        reader = _event_table(
            config.events_table, config.region, config.dynamodb_endpoint_url,
            connect_timeout=config.realtime_timeout_seconds, read_timeout=config.realtime_timeout_seconds,
            retries=0,
        )
        batches = BatchWriter(_batch_connection(self.event_table), attempts=config.event_write_attempts,
                              retry_base_seconds=config.event_retry_base_seconds, call_seconds=config.aws_call_seconds)
        log = EventLog(self.event_table, reader, batches=batches, retention_days=config.event_retention_days)
        if config.insights_counters == COUNTERS_INGEST:  # stream: the stream's consumer counts, off the request
            log.on_stored(self.insights.counters.record)
        return log

    @functools.cached_property
    def insights(self) -> InsightResources:
        """The insight counters and the answers read from them."""
        return InsightResources(self.settings, lambda: self.catalog_cache, self.request_deadline)

    @functools.cached_property
    def catalog(self) -> Catalog:
        """The item catalog, for its routes and imports (API timeouts, one retry)."""
        config = self.settings
        return Catalog(_catalog_table(config.catalog_table_name, config.region, config.dynamodb_endpoint_url,
                                      config.aws_connect_timeout_seconds, config.aws_read_timeout_seconds, 1))

    @functools.cached_property
    def catalog_cache(self) -> CatalogCache:
        """Catalog items kept in the warm instance for answers (bounded TTL and size)."""
        config = self.settings
        # Answers read the catalog with the real-time read's short timeouts and no retry: a slow
        # catalog costs an answer its titles, never its time.
        reader = Catalog(_catalog_table(config.catalog_table_name, config.region, config.dynamodb_endpoint_url,
                                        config.realtime_timeout_seconds, config.realtime_timeout_seconds, 0))
        cache = CatalogCache(reader, config.catalog_cache_seconds, config.catalog_cache_items)
        self.catalog.on_change(cache.forget)
        return cache

    @functools.cached_property
    def catalog_index(self) -> CatalogIndexCache:
        """Every catalog item's filter fields, rebuilt from a scan within the catalog TTL."""
        # A cold instance's first answers wait for the catalog's read, but at most half their deadline.
        index = CatalogIndexCache(self.catalog.all_items, self.settings.catalog_cache_seconds,
                                  wait_seconds=self.settings.request_deadline_seconds / 2)
        self.catalog.on_change(index.changed)
        return index

    @functools.cached_property
    def item_filters(self) -> ItemFilters:
        """Business rules (categories, availability, prices, blocked items) as masks over the model's items."""
        return ItemFilters(self.catalog_index)

    @functools.cached_property
    def answers(self) -> Answers:
        """Every read route's answer: model, business rules, catalog fields and reasons."""
        weights = self.settings.event_weight_map
        return Answers(self.live_model, self.personalizer, self.item_filters, self.catalog_cache,
                       self.settings.history_verb, weights.get("like", DEFAULT_EVENT_WEIGHTS["like"]),
                       weights.get("dislike", DEFAULT_EVENT_WEIGHTS["dislike"]),
                       trending=lambda n, category, exclude: self.insights.trending.top(n, category, exclude))

    @functools.cached_property
    def audiences(self) -> Audiences:
        """The audience routes' answers: the live model's users, erased ones left out."""
        return Audiences(self.live_model, self.item_filters, self.event_log)

    @functools.cached_property
    def segments(self) -> Segments:
        """The segment routes' answers: the live model's segments, described from the catalog."""
        return Segments(self.live_model, self.catalog_cache, self.event_log)

    @functools.cached_property
    def event_rules(self) -> EventRules:
        """What ``POST /events`` accepts, from the stage settings."""
        config = self.settings
        return EventRules(
            event_types=frozenset(config.event_weight_map),
            max_age=timedelta(days=config.event_max_age_days),
            max_future=timedelta(seconds=config.event_max_future_seconds),
        )

    @functools.cached_property
    def live_model(self) -> LiveModel:
        """The model being served, refreshed from the store's pointer; reloads are counted in the metrics."""
        return LiveModel(self.model_store, self.settings.model_refresh_seconds, observer=telemetry.ModelReloads(),
                         approximate_min_items=self.settings.approximate_search_min_items)

    @functools.cached_property
    def retrain_job(self) -> RetrainJob | None:
        """The job the daily schedule starts (``RETRAIN_JOB``), None when none is configured."""
        config = self.settings.retrain_job
        if config is None:
            return None
        service = "ecs" if config.engine == "ecs" else "emr-serverless"
        return retrain_job(config, _jobs_client(service, self.settings.region, self.settings.jobs_endpoint_url))

    @functools.cached_property
    def personalizer(self) -> Personalizer:
        """Recommendations for users, following their latest events."""
        config = self.settings
        return Personalizer(self.live_model, self.event_log, EventWeighting.from_settings(config),
                            config.realtime_events, config.realtime_fresh_weight)

    @functools.cached_property
    def user_tokens(self) -> UserTokens:
        """Makes and verifies user tokens with the stage's signing secrets (Secrets Manager when referenced)."""
        config = self.settings
        referenced = any(entry.secret_arn for entry in config.user_token_secrets)
        client = (_secrets_manager_client(config.region, (config.aws_connect_timeout_seconds,
                                                          config.aws_read_timeout_seconds))
                  if referenced else None)
        return UserTokens(SigningSecrets(config.user_token_secrets, client), config.user_token_max_ttl_seconds)

    @functools.cached_property
    def access(self) -> AccessControl:
        """Who may call which route: the stage's keys, user tokens and event rate limits."""
        config = self.settings
        return AccessControl(
            KeyRing(config.publishable_keys + config.secret_keys),
            self.user_tokens,
            RateLimiter(config.event_rate_key_per_second, config.event_rate_key_burst, "key"),
            RateLimiter(config.event_rate_user_per_second, config.event_rate_user_burst, "user"),
        )

    @functools.cached_property
    def log_user_key(self) -> bytes:
        """The key of :func:`telemetry.user_reference`, derived from the first user-token secret.

        Without a signing secret the references are plain hashes (still no raw id in a log).
        """
        secrets = self.user_tokens.current_secrets()
        first = next(iter(secrets.values()), "")
        return hmac.new(first.encode("utf-8"), b"user references in logs", hashlib.sha256).digest()

    def request_deadline(self) -> Deadline:
        """The deadline of a request starting now: its AWS calls end before it."""
        return Deadline(self.settings.request_deadline_seconds)

    def provision(self) -> None:
        """Create the bucket, the event table (with its time index), the catalog and the insight counters'
        tables if they are missing (the counters' unless ``INSIGHTS_COUNTERS`` is off)."""
        self.model_registry.ensure_bucket(self.settings.region)
        ensure_table(self.event_table)
        self.catalog.ensure_table()
        if self.settings.insights_counters != COUNTERS_OFF:
            ensure_counter_table(self.insights.counter_table)


class InsightResources:
    """The insight counters' table, the writer that keeps them and the readers of the insight routes.

    Built by :attr:`Resources.insights`. Parameters
    ----------
    settings: the stage settings naming the counters' table and its endpoint.
    catalog_cache: the stage's catalog cache (built on first use): counters by category and the
        insight answers need items' catalog fields.
    deadline: a request's deadline from now (``Resources.request_deadline``).
    """

    def __init__(self, settings: Settings, catalog_cache: Callable[[], CatalogCache],
                 deadline: Callable[[], Deadline]) -> None:
        self.settings = settings
        self._catalog_cache = catalog_cache
        self._deadline = deadline

    @functools.cached_property
    def counter_table(self) -> type[CounterRecord]:
        """The counters' table, with the API's timeouts and no retries of its own (callers retry)."""
        config = self.settings
        return _counter_table(config.insights_table_name, config.region, config.dynamodb_endpoint_url,
                              config.aws_connect_timeout_seconds, config.aws_read_timeout_seconds, 0)

    @functools.cached_property
    def counters(self) -> CounterWriter:
        """Keeps the counters: after the event log stores events (``INSIGHTS_COUNTERS=ingest``), or
        from the events table's stream (``stream``, :meth:`count_stream_batch`)."""
        config = self.settings
        table = counter_connection(self.counter_table)
        calls = BatchWriter(table, attempts=config.event_write_attempts,
                            retry_base_seconds=config.event_retry_base_seconds, call_seconds=config.aws_call_seconds)
        return CounterWriter(table, calls, self.item_categories,
                             on_failure=lambda n: telemetry.count("InsightCounterFailures", n))

    def count_stream_batch(self, records: list[dict[str, Any]]) -> StreamBatch | None:
        """Count a batch of the events table's stream records (None: not in stream mode).

        Within a request's deadline (``REQUEST_DEADLINE_SECONDS``, at most 25 s: under the function's
        30 s timeout, so a slow batch fails with its reason logged rather than being killed).

        In ``ingest`` or ``off`` mode the batch is left alone: counting it too would count twice what
        ingest counts (or what was switched off). Raises
        :class:`~chalicelib.errors.InsightCountersNotUpdated` so that Lambda delivers the batch again.
        """
        if self.settings.insights_counters != COUNTERS_STREAM:
            return None
        return count_stream_batch(records, self.counters, self._deadline())

    def item_categories(self, item_ids: list[str]) -> dict[str, tuple[str, ...]]:
        """The catalog categories of those of *item_ids* the catalog holds (through the catalog cache)."""
        return {item_id: item.categories for item_id, item in self._catalog_cache().items(item_ids).items()}

    @functools.cached_property
    def counter_reader(self) -> CounterReader:
        """Reads the counters for the insight and trending routes (API timeouts, one retry)."""
        config = self.settings
        model = _counter_table(config.insights_table_name, config.region, config.dynamodb_endpoint_url,
                               config.aws_connect_timeout_seconds, config.aws_read_timeout_seconds, 1)
        return CounterReader(counter_connection(model))

    @functools.cached_property
    def content_performance(self) -> ContentPerformance:
        """The content performance routes' answers, from the counters."""
        return ContentPerformance(self.counter_reader, self._catalog_cache())

    @functools.cached_property
    def trending(self) -> Trending:
        """Trending items, from the counters' hour and day buckets."""
        config = self.settings
        return Trending(self.counter_reader, self._catalog_cache(), config.event_weight_map,
                        config.trending_half_life_hours, config.trending_min_events)


@functools.cache
def _s3_client(region: str, endpoint_url: str | None, serving_timeouts: tuple[float, float] | None = None) -> Any:
    # boto3 clients are thread-safe; a new session per client keeps credentials resolution independent.
    config = _serving_config(*serving_timeouts) if serving_timeouts else _CLIENT_CONFIG
    return boto3.session.Session().client("s3", region_name=region, endpoint_url=endpoint_url, config=config)


@functools.cache
def _jobs_client(service: str, region: str, endpoint_url: str | None) -> Any:
    # Outside requests (the daily schedule): the scripts' timeouts and retries.
    return boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint_url,
                                          config=_CLIENT_CONFIG)


@functools.cache
def _secrets_manager_client(region: str, timeouts: tuple[float, float]) -> Any:
    # Read inside requests (then cached for minutes): the serving path's timeouts.
    return boto3.session.Session().client("secretsmanager", region_name=region, config=_serving_config(*timeouts))


@functools.cache
def _event_table(table_name: str, region: str, host: str | None, **timeouts: float) -> type[EventRecord]:
    # One model class per table, endpoint and timeouts: pynamodb keeps its connection on the class.
    return event_model(table_name, region, host, **timeouts)


@functools.cache
def _catalog_table(table_name: str, region: str, host: str | None, connect_timeout: float, read_timeout: float,
                   retries: int) -> type[CatalogRecord]:
    return catalog_model(table_name, region, host, connect_timeout=connect_timeout, read_timeout=read_timeout,
                         retries=retries)


@functools.cache
def _counter_table(table_name: str, region: str, host: str | None, connect_timeout: float, read_timeout: float,
                   retries: int) -> type[CounterRecord]:
    return counter_model(table_name, region, host, connect_timeout=connect_timeout, read_timeout=read_timeout,
                         retries=retries)


@functools.cache
def _batch_connection(model: type[EventRecord]) -> TableConnection:
    return table_connection(model, retries=0)  # BatchWriter retries, within the request's deadline


_app_resources_lock = threading.Lock()


def app_resources() -> Resources:
    """The app's resources, from the environment, validated and built once per process."""
    with _app_resources_lock:  # two first requests (chalice local serves them in threads) must not build two
        return _build_app_resources()


@functools.cache
def _build_app_resources() -> Resources:
    settings = load_settings()
    telemetry.configure(settings.log_level)
    return Resources(settings)


def reset_app_resources() -> None:
    """Forget the app's resources and the event-table connections, so the next request builds them
    from its settings again (tests, benchmarks). S3 clients, one per endpoint, are kept."""
    _build_app_resources.cache_clear()
    for cache in (_event_table, _catalog_table, _counter_table, _batch_connection):
        cache.cache_clear()
