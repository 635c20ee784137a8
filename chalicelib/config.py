"""The one place where configuration enters the application.

Stage environment variables (``.chalice/config.json``) are validated once into
a frozen :class:`Settings`; everything else receives plain arguments.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from chalicelib.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = PROJECT_DIR / ".chalice" / "config.json"

APP_NAME = "recommender-api"

PUBLISHABLE = "publishable"
SECRET = "secret"
_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
ORIGIN_PATTERN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
_STREAM_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:dynamodb:[a-z0-9-]+:[0-9]{12}:table/[A-Za-z0-9_.-]{3,255}/stream/\S+$")
_SECRET_ARN_PATTERN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$")
#: The shortest user-token signing secret accepted (HMAC-SHA256 wants 32 bytes of key).
MIN_SIGNING_SECRET_LENGTH = 32

#: Event types and their weights when none are configured: stronger signals weigh more;
#: a dislike is negative feedback. A MovieLens rating counts as one interaction.
DEFAULT_EVENT_WEIGHTS = {
    "view": 1.0,
    "click": 2.0,
    "add_to_cart": 4.0,
    "purchase": 8.0,
    "like": 4.0,
    "dislike": -4.0,
    "report": -8.0,
    "rating": 1.0,
}
#: What a fresh event's weight (logged after the model's training cutoff) is multiplied by when it is
#: folded in with a known user's training row: chosen on a validation period of MovieLens-100k's
#: timeline, before the period the benchmark reports (benchmarks/realtime.py).
DEFAULT_REALTIME_FRESH_WEIGHT = 32.0
#: The range REALTIME_FRESH_WEIGHT may take: below 1 fresh events would count less than old ones.
REALTIME_FRESH_WEIGHT_RANGE = (1.0, 1000.0)
#: What an event's value may do to its weight (chalicelib.eventlog.weighting applies them).
VALUE_TRANSFORMS = ("none", "linear", "log1p")
#: Trending: the fewest events (of any positive type) an item needs in the last 24 hours, and the
#: half-life of an event's weight in hours (chalicelib.insights.trending).
DEFAULT_TRENDING_MIN_EVENTS = 5
DEFAULT_TRENDING_HALF_LIFE_HOURS = 6.0
TRENDING_HALF_LIFE_RANGE = (0.5, 48.0)
#: How the insight counters may be kept (``INSIGHTS_COUNTERS``; README, Insights).
COUNTERS_STREAM, COUNTERS_INGEST, COUNTERS_OFF = "stream", "ingest", "off"
COUNTERS_MODES = (COUNTERS_STREAM, COUNTERS_INGEST, COUNTERS_OFF)
#: The stream ARN chalice is given when ``EVENTS_STREAM_ARN`` is unset: a well-formed stand-in, which the
#: deployed stages' ``.chalice/template.json`` replaces with the stack's ``EventsTable.StreamArn``.
STREAM_ARN_FROM_TEMPLATE = "arn:aws:dynamodb:us-east-1:000000000000:table/events/stream/set-by-the-template"
_HISTORY_VERB_PATTERN = re.compile(r"[a-z]+( [a-z]+){0,2}")
_EVENT_TYPE_PATTERN = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


@dataclass(frozen=True)
class ApiKeyConfig:
    """An API key as configured: its id (safe to log), kind, sha256 and, if publishable, allowed origins."""

    key_id: str
    kind: str
    sha256: str
    origins: frozenset[str] = frozenset()


@dataclass(frozen=True)
class RetrainJobConfig:
    """The retraining job the daily schedule starts (``RETRAIN_JOB``).

    ``engine`` ``ecs``: a Fargate task of ``task_definition`` on ``cluster``
    in ``subnets`` with ``security_groups``, its ``container`` running
    ``command`` (the single-machine engine, ``scripts/retrain.py``).
    ``emr-serverless``: a Spark job run on ``application_id`` as
    ``execution_role_arn``, submitting ``entry_point`` with ``arguments``.
    """

    engine: str
    cluster: str | None = None
    task_definition: str | None = None
    subnets: tuple[str, ...] = ()
    security_groups: tuple[str, ...] = ()
    container: str | None = None
    command: tuple[str, ...] = ()
    application_id: str | None = None
    execution_role_arn: str | None = None
    entry_point: str | None = None
    arguments: tuple[str, ...] = ()
    spark_submit_parameters: str | None = None

    def as_json(self) -> dict[str, object]:
        """The configuration back as the JSON ``RETRAIN_JOB`` holds."""
        fields = {"engine": self.engine, "cluster": self.cluster, "task_definition": self.task_definition,
                  "subnets": list(self.subnets), "security_groups": list(self.security_groups),
                  "container": self.container, "command": list(self.command), "application_id": self.application_id,
                  "execution_role_arn": self.execution_role_arn, "entry_point": self.entry_point,
                  "arguments": list(self.arguments), "spark_submit_parameters": self.spark_submit_parameters}
        return {name: value for name, value in fields.items() if value not in (None, [])}


@dataclass(frozen=True)
class SigningSecretConfig:
    """A user-token signing secret: inline (``value``) or by reference (``secret_arn`` in Secrets Manager)."""

    secret_id: str
    value: str | None = None
    secret_arn: str | None = None


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one stage.

    Attributes mirror the environment variables documented in README.
    """

    model_bucket: str
    model_prefix: str
    events_table: str
    region: str
    s3_endpoint_url: str | None
    dynamodb_endpoint_url: str | None
    model_refresh_seconds: float
    log_level: str
    event_weights: tuple[tuple[str, float], ...] = tuple(DEFAULT_EVENT_WEIGHTS.items())
    #: (event type, transform, cap): what an event's value does to its weight (types not named: nothing).
    event_values: tuple[tuple[str, str, float | None], ...] = ()
    realtime_events: int = 50
    realtime_timeout_seconds: float = 0.25
    #: A fresh event's weight multiplier in a known user's fold-in (``REALTIME_FRESH_WEIGHT``).
    realtime_fresh_weight: float = DEFAULT_REALTIME_FRESH_WEIGHT
    #: Search a model's approximate index (when it has one) from this many items on.
    approximate_search_min_items: int = 250_000
    event_retention_days: int = 0
    event_max_age_days: int = 365
    event_max_future_seconds: int = 300
    event_write_attempts: int = 8
    event_retry_base_seconds: float = 0.05
    publishable_keys: tuple[ApiKeyConfig, ...] = ()
    secret_keys: tuple[ApiKeyConfig, ...] = ()
    user_token_secrets: tuple[SigningSecretConfig, ...] = ()
    user_token_max_ttl_seconds: int = 30 * 86400
    event_rate_key_per_second: float = 100.0
    event_rate_key_burst: int = 1000
    event_rate_user_per_second: float = 5.0
    event_rate_user_burst: int = 100
    request_deadline_seconds: float = 5.0
    catalog_table: str | None = None
    catalog_cache_seconds: float = 300.0
    catalog_cache_items: int = 100_000
    aws_connect_timeout_seconds: float = 0.5
    aws_read_timeout_seconds: float = 1.5
    history_verb: str = "viewed"
    #: The job the daily schedule starts to retrain (None: no scheduled retraining).
    retrain_job: RetrainJobConfig | None = None
    #: Where the ECS and EMR Serverless calls that start it go (None: AWS; the local stage: moto).
    jobs_endpoint_url: str | None = None
    #: The chat's incoming webhook the weekly insights report is posted to (None: not posted). A secret:
    #: whoever holds it can post to the channel, so it is left out of the repr (and of every log).
    insights_webhook_url: str | None = field(default=None, repr=False)
    #: The DynamoDB table of the insight counters (``INSIGHTS_TABLE``; None: the event table's name + ``-insights``).
    insights_table: str | None = None
    #: How the insight counters are kept (``INSIGHTS_COUNTERS``): ``stream`` (the events table's stream
    #: consumer, off the request path: deployed stages), ``ingest`` (by ``POST /events`` and imports, after
    #: storing: emulators have no streams) or ``off``.
    insights_counters: str = "ingest"
    #: Fewest events an item needs in the trending window to be a trend (``TRENDING_MIN_EVENTS``).
    trending_min_events: int = DEFAULT_TRENDING_MIN_EVENTS
    #: Half-life of an event's weight in the trending score, in hours (``TRENDING_HALF_LIFE_HOURS``).
    trending_half_life_hours: float = DEFAULT_TRENDING_HALF_LIFE_HOURS

    @property
    def aws_call_seconds(self) -> float:
        """The longest one AWS call of a request may take: its connect plus read timeouts."""
        return self.aws_connect_timeout_seconds + self.aws_read_timeout_seconds

    @property
    def catalog_table_name(self) -> str:
        """The catalog's DynamoDB table: ``CATALOG_TABLE``, by default the event table's name + ``-catalog``."""
        return self.catalog_table or f"{self.events_table}-catalog"

    @property
    def insights_table_name(self) -> str:
        """The insight counters' DynamoDB table: ``INSIGHTS_TABLE``, by default the event table's name + ``-insights``."""
        return self.insights_table or f"{self.events_table}-insights"

    @property
    def event_weight_map(self) -> dict[str, float]:
        """Event type -> weight."""
        return dict(self.event_weights)


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name, default)
    if value is None or not value.strip():
        raise ConfigError(f"{name} must be set to a non-empty value")
    return value.strip()


def _optional_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if not value:
        return None
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {value!r}")
    return value


def webhook_url(value: str, name: str) -> str:
    """*value* checked as the http(s) URL of an incoming webhook, named *name* in the error.

    The message never repeats the value: a webhook's URL is its secret.

    Raises
    ------
    ConfigError
        When *value* is not an http(s) URL with a host.
    """
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL with a host (the value is not shown: it is a secret)")
    return value.strip()


def _optional_webhook_url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return webhook_url(value, name) if value else None


def _non_negative_float(env: Mapping[str, str], name: str, default: str) -> float:
    raw = env.get(name, default).strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0 or value != value:
        raise ConfigError(f"{name} must be >= 0, got {raw!r}")
    return value


def _int_in_range(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name, str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _event_weights(env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    raw = env.get("EVENT_WEIGHTS", "").strip()
    if not raw:
        return tuple(DEFAULT_EVENT_WEIGHTS.items())
    try:
        weights = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"EVENT_WEIGHTS must be a JSON object of event type to weight: {exc}") from None
    if not isinstance(weights, dict) or not weights:
        raise ConfigError("EVENT_WEIGHTS must be a non-empty JSON object of event type to weight")
    checked = []
    for event_type, weight in weights.items():
        if not _EVENT_TYPE_PATTERN.match(event_type):
            raise ConfigError(f"EVENT_WEIGHTS: event type {event_type!r} must match {_EVENT_TYPE_PATTERN.pattern}")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight) or weight == 0:
            raise ConfigError(f"EVENT_WEIGHTS: weight of {event_type!r} must be a non-zero number, got {weight!r}")
        checked.append((event_type, float(weight)))
    return tuple(checked)


def _event_values(env: Mapping[str, str], weighted_types: set[str]) -> tuple[tuple[str, str, float | None], ...]:
    raw = env.get("EVENT_VALUES", "").strip()
    if not raw:
        return ()
    try:
        entries = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"EVENT_VALUES must be a JSON object of event type to value transform: {exc}") from None
    if not isinstance(entries, dict):
        raise ConfigError("EVENT_VALUES must be a JSON object of event type to value transform")
    checked = []
    for event_type, entry in entries.items():
        if event_type not in weighted_types:
            raise ConfigError(f"EVENT_VALUES: {event_type!r} has no weight in EVENT_WEIGHTS, so its value cannot scale it")
        if isinstance(entry, str):
            entry = {"transform": entry}
        if not isinstance(entry, dict) or set(entry) - {"transform", "cap"}:
            raise ConfigError(f"EVENT_VALUES: {event_type!r} must map to a transform name or "
                              '{"transform": ..., "cap": ...}')
        kind, cap = entry.get("transform"), entry.get("cap")
        if kind not in VALUE_TRANSFORMS:
            raise ConfigError(f"EVENT_VALUES: transform of {event_type!r} must be one of {', '.join(VALUE_TRANSFORMS)}, "
                              f"got {kind!r}")
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, (int, float))
                                or not math.isfinite(cap) or cap <= 0):
            raise ConfigError(f"EVENT_VALUES: cap of {event_type!r} must be a number > 0, got {cap!r}")
        checked.append((event_type, kind, None if cap is None else float(cap)))
    return tuple(checked)


#: What each engine of RETRAIN_JOB needs, and what it may have.
_RETRAIN_JOB_FIELDS = {
    "ecs": ({"cluster", "task_definition", "subnets", "container"}, {"security_groups", "command"}),
    "emr-serverless": ({"application_id", "execution_role_arn", "entry_point"},
                       {"arguments", "spark_submit_parameters"}),
}
_DEFAULT_RETRAIN_COMMAND = ("python", "scripts/retrain.py", "--stage", "prod")


def _retrain_job(env: Mapping[str, str]) -> RetrainJobConfig | None:
    raw = env.get("RETRAIN_JOB", "").strip()
    if not raw:
        return None
    try:
        entry = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"RETRAIN_JOB must be a JSON object: {exc}") from None
    if not isinstance(entry, dict) or entry.get("engine") not in _RETRAIN_JOB_FIELDS:
        raise ConfigError(f"RETRAIN_JOB must be a JSON object whose engine is one of {', '.join(_RETRAIN_JOB_FIELDS)}")
    required, optional = _RETRAIN_JOB_FIELDS[entry["engine"]]
    fields = {name: value for name, value in entry.items() if name != "engine"}
    missing, unknown = sorted(required - set(fields)), sorted(set(fields) - required - optional)
    if missing or unknown:
        raise ConfigError(f"RETRAIN_JOB ({entry['engine']}): " + "; ".join(
            part for part in (missing and f"missing {', '.join(missing)}", unknown and f"unknown {', '.join(unknown)}")
            if part))
    for name, value in fields.items():
        is_list = name in ("subnets", "security_groups", "command", "arguments")
        if is_list and not (isinstance(value, list) and all(isinstance(v, str) and v for v in value)):
            raise ConfigError(f"RETRAIN_JOB: {name} must be a list of non-empty strings")
        if not is_list and not (isinstance(value, str) and value.strip()):
            raise ConfigError(f"RETRAIN_JOB: {name} must be a non-empty string")
    if entry["engine"] == "ecs" and not fields["subnets"]:
        raise ConfigError("RETRAIN_JOB: a Fargate task needs at least one subnet")
    if entry["engine"] == "emr-serverless" and not fields["entry_point"].startswith("s3://"):
        raise ConfigError("RETRAIN_JOB: entry_point must be the s3:// address of the job's script")
    lists = {name: tuple(fields[name]) for name in ("subnets", "security_groups", "command", "arguments")
             if name in fields}
    if entry["engine"] == "ecs":
        lists.setdefault("command", _DEFAULT_RETRAIN_COMMAND)
    return RetrainJobConfig(engine=entry["engine"], **{**fields, **lists})


def _json_list(env: Mapping[str, str], name: str) -> list:
    raw = env.get(name, "").strip()
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a JSON list: {exc}") from None
    if not isinstance(value, list) or not all(isinstance(entry, dict) for entry in value):
        raise ConfigError(f"{name} must be a JSON list of objects")
    return value


def _entry_id(name: str, entry: dict, position: int) -> str:
    entry_id = entry.get("id")
    if not isinstance(entry_id, str) or not _ID_PATTERN.match(entry_id):
        raise ConfigError(f"{name}[{position}].id must be 1 to 64 letters, digits or '._-', got {entry_id!r}")
    return entry_id


def _api_keys(env: Mapping[str, str], name: str, kind: str) -> tuple[ApiKeyConfig, ...]:
    keys = []
    for position, entry in enumerate(_json_list(env, name)):
        allowed = {"id", "sha256", "origins"} if kind == PUBLISHABLE else {"id", "sha256"}
        unknown = sorted(set(entry) - allowed)
        if unknown:
            raise ConfigError(f"{name}[{position}] has unknown field {unknown[0]!r} (fields: {', '.join(sorted(allowed))})")
        sha256 = entry.get("sha256")
        if not isinstance(sha256, str) or not _SHA256_PATTERN.match(sha256):
            raise ConfigError(f"{name}[{position}].sha256 must be the key's sha256 in lowercase hex "
                              "(scripts/keys.py prints it); keys themselves are never configured")
        origins = entry.get("origins", [])
        if kind == PUBLISHABLE:
            if not isinstance(origins, list) or not origins or not all(
                    isinstance(origin, str) and ORIGIN_PATTERN.match(origin) for origin in origins):
                raise ConfigError(f"{name}[{position}].origins must list the web origins allowed to use the key, "
                                  "like \"https://shop.example\" (scheme and host, optional port, no path)")
        keys.append(ApiKeyConfig(_entry_id(name, entry, position), kind, sha256, frozenset(origins)))
    return tuple(keys)


def _signing_secrets(env: Mapping[str, str]) -> tuple[SigningSecretConfig, ...]:
    name = "USER_TOKEN_SECRETS"
    secrets = []
    for position, entry in enumerate(_json_list(env, name)):
        unknown = sorted(set(entry) - {"id", "value", "secret_arn"})
        if unknown:
            raise ConfigError(f"{name}[{position}] has unknown field {unknown[0]!r} (fields: id, value, secret_arn)")
        value, arn = entry.get("value"), entry.get("secret_arn")
        if (value is None) == (arn is None):
            raise ConfigError(f"{name}[{position}] needs exactly one of value (inline) and secret_arn (Secrets Manager)")
        if value is not None and (not isinstance(value, str) or len(value) < MIN_SIGNING_SECRET_LENGTH):
            raise ConfigError(f"{name}[{position}].value must be a string of at least {MIN_SIGNING_SECRET_LENGTH} "
                              "characters")
        if arn is not None and (not isinstance(arn, str) or not _SECRET_ARN_PATTERN.match(arn)):
            raise ConfigError(f"{name}[{position}].secret_arn must be a Secrets Manager secret ARN, got {arn!r}")
        secrets.append(SigningSecretConfig(_entry_id(name, entry, position), value, arn))
    return tuple(secrets)


def _deadline(env: Mapping[str, str]) -> float:
    name = "REQUEST_DEADLINE_SECONDS"
    seconds = _positive_float(env, name, "5")
    # Below 1 s one slow AWS call would fail every request; above 25 s API Gateway (29 s) answers first.
    if not 1.0 <= seconds <= 25.0:
        raise ConfigError(f"{name} must be between 1 and 25 seconds, got {seconds:g}")
    return seconds


def _fresh_weight(env: Mapping[str, str]) -> float:
    low, high = REALTIME_FRESH_WEIGHT_RANGE
    return _float_in_range(env, "REALTIME_FRESH_WEIGHT", DEFAULT_REALTIME_FRESH_WEIGHT, low, high, "")


def _float_in_range(env: Mapping[str, str], name: str, default: float, low: float, high: float, unit: str) -> float:
    raw = env.get(name, "").strip() or repr(default)
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number{' of ' + unit if unit else ''}, got {raw[:40]!r}") from None
    if not low <= value <= high:  # also refuses nan and inf
        raise ConfigError(f"{name} must be between {low:g} and {high:g}{' ' + unit if unit else ''}, got {raw[:40]!r}")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: str) -> float:
    value = _non_negative_float(env, name, default)
    if value > 1e6:
        raise ConfigError(f"{name} must be at most 1e6, got {value}")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Validate the environment into :class:`Settings`.

    Parameters
    ----------
    env:
        The environment to read; ``os.environ`` when omitted.

    Raises
    ------
    ConfigError
        Naming the first variable that is missing or malformed.
    """
    env = os.environ if env is None else env
    prefix = env.get("MODEL_PREFIX", "models/").strip().strip("/")
    log_level = env.get("LOG_LEVEL", "INFO").strip().upper()
    if log_level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigError(f"LOG_LEVEL must be DEBUG, INFO, WARNING or ERROR, got {log_level!r}")
    publishable = _api_keys(env, "PUBLISHABLE_KEYS", PUBLISHABLE)
    secret = _api_keys(env, "SECRET_KEYS", SECRET)
    signing = _signing_secrets(env)
    for what, ids in (("key", [key.key_id for key in publishable + secret]),
                      ("user-token secret", [entry.secret_id for entry in signing])):
        repeated = sorted({one for one in ids if ids.count(one) > 1})
        if repeated:
            raise ConfigError(f"{what} id {repeated[0]!r} is configured twice; ids must be unique")
    settings = Settings(
        model_bucket=_text(env, "MODEL_BUCKET"),
        model_prefix=prefix,
        events_table=_text(env, "EVENTS_TABLE"),
        region=_text(env, "AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
        s3_endpoint_url=_optional_url(env, "S3_ENDPOINT_URL"),
        dynamodb_endpoint_url=_optional_url(env, "DYNAMODB_ENDPOINT_URL"),
        model_refresh_seconds=_non_negative_float(env, "MODEL_REFRESH_SECONDS", "60"),
        log_level=log_level,
        event_weights=_event_weights(env),
        event_values=_event_values(env, {event_type for event_type, _ in _event_weights(env)}),
        realtime_events=_int_in_range(env, "REALTIME_EVENTS", 50, 0, 1000),
        realtime_timeout_seconds=_non_negative_float(env, "REALTIME_TIMEOUT_SECONDS", "0.25"),
        realtime_fresh_weight=_fresh_weight(env),
        approximate_search_min_items=_int_in_range(env, "APPROXIMATE_SEARCH_MIN_ITEMS", 250_000, 0, 10**12),
        event_retention_days=_int_in_range(env, "EVENT_RETENTION_DAYS", 0, 0, 36500),
        event_max_age_days=_int_in_range(env, "EVENT_MAX_AGE_DAYS", 365, 1, 36500),
        event_max_future_seconds=_int_in_range(env, "EVENT_MAX_FUTURE_SECONDS", 300, 0, 86400),
        event_write_attempts=_int_in_range(env, "EVENT_WRITE_ATTEMPTS", 8, 1, 50),
        event_retry_base_seconds=_non_negative_float(env, "EVENT_RETRY_BASE_SECONDS", "0.05"),
        publishable_keys=publishable,
        secret_keys=secret,
        user_token_secrets=signing,
        user_token_max_ttl_seconds=_int_in_range(env, "USER_TOKEN_MAX_TTL_SECONDS", 30 * 86400, 60, 365 * 86400),
        event_rate_key_per_second=_positive_float(env, "EVENT_RATE_KEY_PER_SECOND", "100"),
        event_rate_key_burst=_int_in_range(env, "EVENT_RATE_KEY_BURST", 1000, 1, 1_000_000),
        event_rate_user_per_second=_positive_float(env, "EVENT_RATE_USER_PER_SECOND", "5"),
        event_rate_user_burst=_int_in_range(env, "EVENT_RATE_USER_BURST", 100, 1, 1_000_000),
        request_deadline_seconds=_deadline(env),
        catalog_table=env.get("CATALOG_TABLE", "").strip() or None,
        catalog_cache_seconds=float(_int_in_range(env, "CATALOG_CACHE_SECONDS", 300, 0, 3600)),
        catalog_cache_items=_int_in_range(env, "CATALOG_CACHE_ITEMS", 100_000, 0, 10_000_000),
        aws_connect_timeout_seconds=_positive_float(env, "AWS_CONNECT_TIMEOUT_SECONDS", "0.5"),
        aws_read_timeout_seconds=_positive_float(env, "AWS_READ_TIMEOUT_SECONDS", "1.5"),
        history_verb=_history_verb(env),
        retrain_job=_retrain_job(env),
        jobs_endpoint_url=_optional_url(env, "JOBS_ENDPOINT_URL"),
        insights_webhook_url=_optional_webhook_url(env, "INSIGHTS_WEBHOOK_URL"),
        insights_table=env.get("INSIGHTS_TABLE", "").strip() or None,
        insights_counters=_counters_mode(env),
        trending_min_events=_int_in_range(env, "TRENDING_MIN_EVENTS", DEFAULT_TRENDING_MIN_EVENTS, 1, 1_000_000),
        trending_half_life_hours=_half_life(env),
    )
    if settings.aws_call_seconds > settings.request_deadline_seconds:
        # Requests refuse to start an AWS call that could outlast their deadline: every write would fail.
        raise ConfigError(
            f"REQUEST_DEADLINE_SECONDS ({settings.request_deadline_seconds:g}) is shorter than one AWS call may take "
            f"(AWS_CONNECT_TIMEOUT_SECONDS + AWS_READ_TIMEOUT_SECONDS = {settings.aws_call_seconds:g}): raise it or "
            "lower the timeouts")
    return settings


def _counters_mode(env: Mapping[str, str]) -> str:
    # Unset means ingest: the one mode that works wherever the events table is (emulators and scripts
    # included); deployed stages set stream in .chalice/config.json, their stack gives them the stream.
    raw = env.get("INSIGHTS_COUNTERS", "").strip().lower() or COUNTERS_INGEST
    if raw not in COUNTERS_MODES:
        raise ConfigError(f"INSIGHTS_COUNTERS must be {', '.join(COUNTERS_MODES[:-1])} or {COUNTERS_MODES[-1]} "
                          f"(stream: a consumer of the events table's stream keeps them; ingest: POST /events and "
                          f"imports do; off: nobody), got {raw[:40]!r}")
    return raw


def events_stream_arn(env: Mapping[str, str] | None = None) -> str:
    """The events table's stream the insight counters' consumer reads (``EVENTS_STREAM_ARN``).

    Read apart from :func:`load_settings` because chalice needs it when it loads ``app.py``
    (``chalice package`` and ``chalice local`` load it with the stage's variables only, where the
    deployed stages' table names are not known yet). Unset, it is :data:`STREAM_ARN_FROM_TEMPLATE`:
    ``.chalice/template.json`` replaces it with the stack's own stream, and ``chalice local`` runs no
    event source.

    Raises
    ------
    ConfigError
        When it is set to something other than a DynamoDB stream ARN.
    """
    env = os.environ if env is None else env
    arn = env.get("EVENTS_STREAM_ARN", "").strip()
    if not arn:
        return STREAM_ARN_FROM_TEMPLATE
    if not _STREAM_ARN_PATTERN.match(arn):
        raise ConfigError("EVENTS_STREAM_ARN must be a DynamoDB stream ARN "
                          f"(arn:aws:dynamodb:<region>:<account>:table/<table>/stream/<label>), got {arn[:80]!r}")
    return arn


def _half_life(env: Mapping[str, str]) -> float:
    low, high = TRENDING_HALF_LIFE_RANGE
    return _float_in_range(env, "TRENDING_HALF_LIFE_HOURS", DEFAULT_TRENDING_HALF_LIFE_HOURS, low, high, "hours")


def _history_verb(env: Mapping[str, str]) -> str:
    # The verb of "Because you <verb> Toy Story": "watched" for films, "bought" for a shop.
    verb = env.get("EXPLAIN_HISTORY_VERB", "").strip() or "viewed"
    if not _HISTORY_VERB_PATTERN.fullmatch(verb):
        raise ConfigError(f"EXPLAIN_HISTORY_VERB must be one to three lower-case words, got {verb[:40]!r}")
    return verb


def environment_of(settings: Settings) -> dict[str, str]:
    """The environment variables that :func:`load_settings` turns back into *settings*."""
    return {
        "MODEL_BUCKET": settings.model_bucket,
        "MODEL_PREFIX": settings.model_prefix,
        "EVENTS_TABLE": settings.events_table,
        "AWS_REGION": settings.region,
        "S3_ENDPOINT_URL": settings.s3_endpoint_url or "",
        "DYNAMODB_ENDPOINT_URL": settings.dynamodb_endpoint_url or "",
        "MODEL_REFRESH_SECONDS": repr(settings.model_refresh_seconds),
        "LOG_LEVEL": settings.log_level,
        "EVENT_WEIGHTS": json.dumps(settings.event_weight_map),
        "EVENT_VALUES": json.dumps({event_type: {"transform": kind, "cap": cap}
                                    for event_type, kind, cap in settings.event_values}),
        "REALTIME_EVENTS": str(settings.realtime_events),
        "REALTIME_TIMEOUT_SECONDS": repr(settings.realtime_timeout_seconds),
        "REALTIME_FRESH_WEIGHT": repr(settings.realtime_fresh_weight),
        "APPROXIMATE_SEARCH_MIN_ITEMS": str(settings.approximate_search_min_items),
        "EVENT_RETENTION_DAYS": str(settings.event_retention_days),
        "EVENT_MAX_AGE_DAYS": str(settings.event_max_age_days),
        "EVENT_MAX_FUTURE_SECONDS": str(settings.event_max_future_seconds),
        "EVENT_WRITE_ATTEMPTS": str(settings.event_write_attempts),
        "EVENT_RETRY_BASE_SECONDS": repr(settings.event_retry_base_seconds),
        "PUBLISHABLE_KEYS": json.dumps([{"id": key.key_id, "sha256": key.sha256, "origins": sorted(key.origins)}
                                        for key in settings.publishable_keys]),
        "SECRET_KEYS": json.dumps([{"id": key.key_id, "sha256": key.sha256} for key in settings.secret_keys]),
        "USER_TOKEN_SECRETS": json.dumps([
            {"id": entry.secret_id, **({"value": entry.value} if entry.value is not None else
                                       {"secret_arn": entry.secret_arn})}
            for entry in settings.user_token_secrets
        ]),
        "USER_TOKEN_MAX_TTL_SECONDS": str(settings.user_token_max_ttl_seconds),
        "EVENT_RATE_KEY_PER_SECOND": repr(settings.event_rate_key_per_second),
        "EVENT_RATE_KEY_BURST": str(settings.event_rate_key_burst),
        "EVENT_RATE_USER_PER_SECOND": repr(settings.event_rate_user_per_second),
        "EVENT_RATE_USER_BURST": str(settings.event_rate_user_burst),
        "REQUEST_DEADLINE_SECONDS": repr(settings.request_deadline_seconds),
        "CATALOG_TABLE": settings.catalog_table or "",
        "CATALOG_CACHE_SECONDS": str(int(settings.catalog_cache_seconds)),
        "CATALOG_CACHE_ITEMS": str(settings.catalog_cache_items),
        "AWS_CONNECT_TIMEOUT_SECONDS": repr(settings.aws_connect_timeout_seconds),
        "AWS_READ_TIMEOUT_SECONDS": repr(settings.aws_read_timeout_seconds),
        "EXPLAIN_HISTORY_VERB": settings.history_verb,
        "RETRAIN_JOB": json.dumps(settings.retrain_job.as_json()) if settings.retrain_job else "",
        "JOBS_ENDPOINT_URL": settings.jobs_endpoint_url or "",
        "INSIGHTS_WEBHOOK_URL": settings.insights_webhook_url or "",
        "INSIGHTS_TABLE": settings.insights_table or "",
        "INSIGHTS_COUNTERS": settings.insights_counters,
        "TRENDING_MIN_EVENTS": str(settings.trending_min_events),
        "TRENDING_HALF_LIFE_HOURS": repr(settings.trending_half_life_hours),
    }


def stage_environment(stage: str, config_path: Path = CHALICE_CONFIG) -> dict[str, str]:
    """Return the environment variables ``.chalice/config.json`` sets for *stage*.

    Top-level variables are overridden by the stage's own, as chalice does.
    Scripts use this so that they run against the same resources as the API.
    """
    try:
        config = json.loads(config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {config_path}: {exc}") from exc
    stages = config.get("stages", {})
    if stage not in stages:
        raise ConfigError(f"stage {stage!r} is not in {config_path} (stages: {', '.join(sorted(stages))})")
    merged = dict(config.get("environment_variables", {}))
    merged.update(stages[stage].get("environment_variables", {}))
    return {key: str(value) for key, value in merged.items()}


#: Variables a deployed stage's template gives its function, which scripts take from the stack's outputs.
STACK_OUTPUTS = ("MODEL_BUCKET", "EVENTS_TABLE")


def settings_for_stage(stage: str, overrides: Mapping[str, str] | None = None) -> Settings:
    """Settings of a chalice stage, as the scripts see them.

    The process environment wins over the stage file, so a variable exported
    in the shell (e.g. ``MODEL_BUCKET``) takes precedence. The AWS credential
    variables a stage sets (the local stage's fake keys) are exported into
    this process so boto3 picks them up exactly as under ``chalice local``.
    """
    stage_env = stage_environment(stage)
    merged = {**stage_env, **os.environ, **(overrides or {})}
    missing = [name for name in STACK_OUTPUTS if name not in merged]
    if missing:
        raise ConfigError(
            f"stage {stage!r} does not set {' and '.join(missing)}: a deployed stage gets them from its "
            "CloudFormation stack, so export them from the stack's outputs (README, Deploy to AWS)")
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        if key in stage_env and key not in os.environ:
            os.environ[key] = stage_env[key]
    return load_settings(merged)
