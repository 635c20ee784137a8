"""Configuration: environment validation and the real .chalice/config.json stages."""

from __future__ import annotations

import json

import pytest

from chalicelib.access.keys import hash_key
from chalicelib.config import (
    CHALICE_CONFIG,
    Settings,
    load_settings,
    settings_for_stage,
    stage_environment,
)
from chalicelib.errors import ConfigError

MINIMAL_ENV = {"MODEL_BUCKET": "models-bucket", "EVENTS_TABLE": "events-table"}
STAGES = ["dev", "local", "prod"]


def env(**overrides: str) -> dict[str, str]:
    return {**MINIMAL_ENV, **overrides}


# --- load_settings --------------------------------------------------------------------------


def test_minimal_environment_gets_the_documented_defaults():
    assert load_settings(MINIMAL_ENV) == Settings(
        model_bucket="models-bucket",
        model_prefix="models",
        events_table="events-table",
        region="us-east-1",
        s3_endpoint_url=None,
        dynamodb_endpoint_url=None,
        model_refresh_seconds=60.0,
        log_level="INFO",
    )


def test_explicit_values_are_normalised():
    settings = load_settings(env(
        MODEL_PREFIX="/releases/models/", AWS_REGION="eu-west-1", MODEL_REFRESH_SECONDS="0",
        S3_ENDPOINT_URL="http://127.0.0.1:4569", DYNAMODB_ENDPOINT_URL="https://dynamo.example",
        LOG_LEVEL="debug",
    ))

    assert settings.model_prefix == "releases/models"
    assert settings.region == "eu-west-1"
    assert settings.model_refresh_seconds == 0.0
    assert settings.s3_endpoint_url == "http://127.0.0.1:4569"
    assert settings.dynamodb_endpoint_url == "https://dynamo.example"
    assert settings.log_level == "DEBUG"


def test_region_falls_back_to_aws_default_region():
    assert load_settings(env(AWS_DEFAULT_REGION="ap-south-1")).region == "ap-south-1"


@pytest.mark.parametrize("name", ["MODEL_BUCKET", "EVENTS_TABLE"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_or_blank_required_variable_is_named(name, value):
    environment = dict(MINIMAL_ENV)
    if value is None:
        del environment[name]
    else:
        environment[name] = value

    with pytest.raises(ConfigError, match=name):
        load_settings(environment)


@pytest.mark.parametrize(
    "name, value",
    [
        ("MODEL_REFRESH_SECONDS", "soon"),
        ("MODEL_REFRESH_SECONDS", "-1"),
        ("MODEL_REFRESH_SECONDS", "nan"),
        ("MODEL_REFRESH_SECONDS", ""),
        ("S3_ENDPOINT_URL", "127.0.0.1:4569"),
        ("S3_ENDPOINT_URL", "ftp://127.0.0.1:4569"),
        ("DYNAMODB_ENDPOINT_URL", "localhost:4567"),
        ("LOG_LEVEL", "verbose"),
        ("LOG_LEVEL", "CRITICAL"),
        ("APPROXIMATE_SEARCH_MIN_ITEMS", "many"),
        ("APPROXIMATE_SEARCH_MIN_ITEMS", "-1"),
        ("APPROXIMATE_SEARCH_MIN_ITEMS", "1.5"),
        ("APPROXIMATE_SEARCH_MIN_ITEMS", "1e6"),
        ("APPROXIMATE_SEARCH_MIN_ITEMS", str(10**12 + 1)),
        ("APPROXIMATE_SEARCH_MIN_ITEMS", ""),
    ],
)
def test_malformed_variable_is_a_config_error_naming_it(name, value):
    with pytest.raises(ConfigError, match=name):
        load_settings(env(**{name: value}))


def test_approximate_search_starts_at_a_quarter_million_items_unless_told_otherwise():
    assert load_settings(MINIMAL_ENV).approximate_search_min_items == 250_000
    assert load_settings(env(APPROXIMATE_SEARCH_MIN_ITEMS="0")).approximate_search_min_items == 0
    assert load_settings(env(APPROXIMATE_SEARCH_MIN_ITEMS=" 1000000 ")).approximate_search_min_items == 1_000_000
    assert load_settings(env(APPROXIMATE_SEARCH_MIN_ITEMS=str(10**12))).approximate_search_min_items == 10**12


SHA = "a" * 64
GOOD_SECRET = "s" * 32
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:signing-AbCdEf"


def test_keys_and_signing_secrets_are_read_by_id_hash_and_reference():
    settings = load_settings(env(
        PUBLISHABLE_KEYS=json.dumps([{"id": "web", "sha256": SHA, "origins": ["https://a.example", "http://b:8000"]}]),
        SECRET_KEYS=json.dumps([{"id": "server-new", "sha256": "b" * 64}, {"id": "server-old", "sha256": "c" * 64}]),
        USER_TOKEN_SECRETS=json.dumps([{"id": "k2", "secret_arn": ARN}, {"id": "k1", "value": GOOD_SECRET}]),
        EVENT_RATE_USER_PER_SECOND="0.5", EVENT_RATE_USER_BURST="20",
    ))

    assert [(key.key_id, key.kind, key.origins) for key in settings.publishable_keys] == [
        ("web", "publishable", {"https://a.example", "http://b:8000"})]
    assert [key.key_id for key in settings.secret_keys] == ["server-new", "server-old"]  # two at once: rotation
    assert [(entry.secret_id, entry.value, entry.secret_arn) for entry in settings.user_token_secrets] == [
        ("k2", None, ARN), ("k1", GOOD_SECRET, None)]
    assert (settings.event_rate_user_per_second, settings.event_rate_user_burst) == (0.5, 20)


def test_without_keys_no_route_but_health_can_be_called():
    settings = load_settings(MINIMAL_ENV)
    assert settings.publishable_keys == settings.secret_keys == settings.user_token_secrets == ()


@pytest.mark.parametrize("name, value, message", [
    ("PUBLISHABLE_KEYS", "{}", "JSON list"),
    ("PUBLISHABLE_KEYS", "[{", "JSON list"),
    ("PUBLISHABLE_KEYS", json.dumps([{"id": "w", "sha256": SHA}]), "origins"),
    ("PUBLISHABLE_KEYS", json.dumps([{"id": "w", "sha256": SHA, "origins": ["https://a.example/path"]}]), "origins"),
    ("PUBLISHABLE_KEYS", json.dumps([{"id": "w", "sha256": SHA, "origins": ["*"]}]), "origins"),
    ("PUBLISHABLE_KEYS", json.dumps([{"id": "w", "key": "pk_plain", "sha256": SHA, "origins": []}]), "unknown field"),
    ("SECRET_KEYS", json.dumps([{"id": "s", "sha256": "pk_not_a_hash"}]), "sha256"),
    ("SECRET_KEYS", json.dumps([{"id": "s", "sha256": SHA.upper()}]), "sha256"),
    ("SECRET_KEYS", json.dumps([{"id": "has space", "sha256": SHA}]), "id"),
    ("SECRET_KEYS", json.dumps([{"id": "s", "sha256": SHA}, {"id": "s", "sha256": "b" * 64}]), "twice"),
    ("USER_TOKEN_SECRETS", json.dumps([{"id": "k", "value": "short"}]), "at least 32"),
    ("USER_TOKEN_SECRETS", json.dumps([{"id": "k", "value": GOOD_SECRET, "secret_arn": ARN}]), "exactly one"),
    ("USER_TOKEN_SECRETS", json.dumps([{"id": "k"}]), "exactly one"),
    ("USER_TOKEN_SECRETS", json.dumps([{"id": "k", "secret_arn": "signing"}]), "ARN"),
    ("USER_TOKEN_MAX_TTL_SECONDS", "10", "USER_TOKEN_MAX_TTL_SECONDS"),
    ("EVENT_RATE_KEY_PER_SECOND", "-1", "EVENT_RATE_KEY_PER_SECOND"),
    ("EVENT_RATE_USER_BURST", "0", "EVENT_RATE_USER_BURST"),
])
def test_malformed_access_settings_are_refused_saying_what_is_wrong(name, value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env(**{name: value}))


def test_the_local_stage_holds_only_hashes_of_its_demo_keys():
    from local_aws.demo import DEMO_PUBLISHABLE_KEY, DEMO_SECRET_KEY

    stage = stage_environment("local")
    settings = load_settings(stage)
    assert DEMO_PUBLISHABLE_KEY not in json.dumps(stage) and DEMO_SECRET_KEY not in json.dumps(stage)
    assert {key.sha256 for key in settings.publishable_keys} == {hash_key(DEMO_PUBLISHABLE_KEY)}
    assert {key.sha256 for key in settings.secret_keys} == {hash_key(DEMO_SECRET_KEY)}


# --- the real .chalice/config.json ------------------------------------------------------------


def test_the_project_defines_dev_local_and_prod_stages():
    assert sorted(json.loads(CHALICE_CONFIG.read_text())["stages"]) == STAGES


def test_local_stage_points_every_endpoint_at_localhost():
    stage = stage_environment("local")

    assert stage["S3_ENDPOINT_URL"].startswith("http://127.0.0.1:")
    assert stage["DYNAMODB_ENDPOINT_URL"].startswith("http://127.0.0.1:")


@pytest.mark.parametrize("stage", ["dev", "prod"])
def test_deployed_stages_use_real_aws_endpoints(stage):
    environment = stage_environment(stage)

    assert "S3_ENDPOINT_URL" not in environment
    assert "DYNAMODB_ENDPOINT_URL" not in environment
    assert "AWS_ACCESS_KEY_ID" not in environment


def test_stage_values_override_top_level_ones():
    top_level = json.loads(CHALICE_CONFIG.read_text())["environment_variables"]

    assert stage_environment("prod")["MODEL_REFRESH_SECONDS"] == "300"
    assert top_level["MODEL_REFRESH_SECONDS"] != "300"
    assert stage_environment("dev")["MODEL_REFRESH_SECONDS"] == top_level["MODEL_REFRESH_SECONDS"]
    assert stage_environment("dev")["MODEL_PREFIX"] == top_level["MODEL_PREFIX"]


def test_unknown_stage_lists_the_known_ones():
    with pytest.raises(ConfigError, match="staging") as error:
        stage_environment("staging")

    assert all(stage in str(error.value) for stage in STAGES)


def test_unreadable_config_file_is_a_config_error(tmp_path):
    broken = tmp_path / "config.json"
    broken.write_text("{not json")

    with pytest.raises(ConfigError, match="cannot read"):
        stage_environment("dev", broken)
    with pytest.raises(ConfigError, match="cannot read"):
        stage_environment("dev", tmp_path / "missing.json")


def test_the_local_stage_validates():
    """The deployed stages validate with what their stack gives them: tests/test_deploy.py."""
    settings = load_settings(stage_environment("local"))

    assert settings.model_bucket and settings.events_table
    assert settings.model_prefix == "models"


def test_prod_refreshes_less_often_and_still_logs_each_request():
    settings = load_settings({**stage_environment("prod"), **MINIMAL_ENV})

    assert settings.model_refresh_seconds == 300.0
    assert settings.log_level == "INFO"  # one INFO line per request


def test_settings_for_stage_lets_the_shell_and_overrides_win(monkeypatch):
    for name in ("MODEL_PREFIX", "S3_ENDPOINT_URL", "DYNAMODB_ENDPOINT_URL",
                 "MODEL_REFRESH_SECONDS", "LOG_LEVEL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_BUCKET", "from-the-shell")
    monkeypatch.setenv("EVENTS_TABLE", "table-from-the-shell")

    settings = settings_for_stage("prod", overrides={"LOG_LEVEL": "DEBUG"})

    assert settings.model_bucket == "from-the-shell"
    assert settings.events_table == "table-from-the-shell"
    assert settings.model_refresh_seconds == float(stage_environment("prod")["MODEL_REFRESH_SECONDS"])
    assert settings.log_level == "DEBUG"


def test_a_deployed_stage_without_its_stack_outputs_says_where_to_find_them(monkeypatch):
    monkeypatch.delenv("MODEL_BUCKET", raising=False)
    monkeypatch.setenv("EVENTS_TABLE", "table-from-the-shell")

    with pytest.raises(ConfigError, match="MODEL_BUCKET.*stack's outputs"):
        settings_for_stage("dev")


# Regression: the local stage's emulator timeouts (2 + 5 s) outlasted the default 5 s deadline, so
# every event write of `make demo` was refused before it started.
def test_a_deadline_shorter_than_one_aws_call_is_refused():
    env = {**MINIMAL_ENV, "AWS_CONNECT_TIMEOUT_SECONDS": "2", "AWS_READ_TIMEOUT_SECONDS": "5"}
    with pytest.raises(ConfigError, match="REQUEST_DEADLINE_SECONDS"):
        load_settings(env)
    assert load_settings({**env, "REQUEST_DEADLINE_SECONDS": "7"}).request_deadline_seconds == 7.0


# --- event values -------------------------------------------------------------------------------------------


def test_event_values_are_read_per_type_and_round_trip():
    from chalicelib.config import environment_of
    from chalicelib.eventlog.weighting import EventWeighting, ValueTransform

    settings = load_settings(env(EVENT_WEIGHTS='{"play": 1, "purchase": 8}',
                                 EVENT_VALUES='{"play": {"transform": "log1p", "cap": 100}, "purchase": "linear"}'))
    assert settings.event_values == (("play", "log1p", 100.0), ("purchase", "linear", None))
    assert EventWeighting.from_settings(settings).value_transforms == {"play": ValueTransform("log1p", 100.0),
                                                         "purchase": ValueTransform("linear")}
    assert load_settings(environment_of(settings)) == settings
    assert EventWeighting.from_settings(load_settings(MINIMAL_ENV)).value_transforms == {}  # by default a value changes nothing


@pytest.mark.parametrize(("value", "message"), [
    ("[1]", "JSON object of event type to value transform"),
    ("{", "JSON object of event type to value transform"),
    ('{"stream": "linear"}', "'stream' has no weight in EVENT_WEIGHTS"),
    ('{"view": "sqrt"}', "transform of 'view' must be one of none, linear, log1p"),
    ('{"view": {"transform": "linear", "cap": 0}}', "cap of 'view' must be a number > 0"),
    ('{"view": {"transform": "linear", "cap": true}}', "cap of 'view' must be a number > 0"),
    ('{"view": {"transform": "linear", "limit": 3}}', "must map to a transform name"),
])
def test_malformed_event_values_are_refused_saying_what_is_wrong(value, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(env(EVENT_VALUES=value))


# --- the fresh weight of real-time fold-in ---------------------------------------------------------------


def test_realtime_fresh_weight_defaults_to_the_validated_value_and_round_trips():
    from chalicelib.config import DEFAULT_REALTIME_FRESH_WEIGHT, environment_of

    assert load_settings(MINIMAL_ENV).realtime_fresh_weight == DEFAULT_REALTIME_FRESH_WEIGHT == 32.0
    assert load_settings(env(REALTIME_FRESH_WEIGHT="")).realtime_fresh_weight == 32.0
    for raw, value in [("1", 1.0), (" 2.5 ", 2.5), ("1000", 1000.0), ("1e2", 100.0)]:
        settings = load_settings(env(REALTIME_FRESH_WEIGHT=raw))
        assert settings.realtime_fresh_weight == value
        assert load_settings(environment_of(settings)) == settings


@pytest.mark.parametrize(("value", "message"), [
    ("heavy", "must be a number, got 'heavy'"),
    ("0.5", "must be between 1 and 1000, got '0.5'"),
    ("0", "must be between 1 and 1000"),
    ("-32", "must be between 1 and 1000"),
    ("1000.5", "must be between 1 and 1000"),
    ("nan", "must be between 1 and 1000"),
    ("inf", "must be between 1 and 1000"),
])
def test_malformed_realtime_fresh_weight_is_refused_saying_what_is_wrong(value, message):
    with pytest.raises(ConfigError, match=f"REALTIME_FRESH_WEIGHT {message}"):
        load_settings(env(REALTIME_FRESH_WEIGHT=value))


# --- the weekly insights report's webhook -------------------------------------------------------------


def test_the_insights_webhook_is_optional_validated_round_trips_and_never_shown():
    from chalicelib.config import environment_of

    assert load_settings(MINIMAL_ENV).insights_webhook_url is None
    url = "https://hooks.slack.com/services/T000/B000/secret-token"
    settings = load_settings(env(INSIGHTS_WEBHOOK_URL=f" {url} "))
    assert settings.insights_webhook_url == url
    assert load_settings(environment_of(settings)) == settings
    assert "secret-token" not in repr(settings)


@pytest.mark.parametrize("value", ["hooks.slack.com/services/secret-token", "ftp://hooks.example/secret-token",
                                   "https:///secret-token"])
def test_a_malformed_insights_webhook_is_refused_without_repeating_it(value):
    with pytest.raises(ConfigError, match="INSIGHTS_WEBHOOK_URL must be an http") as caught:
        load_settings(env(INSIGHTS_WEBHOOK_URL=value))
    assert "secret-token" not in str(caught.value)


@pytest.mark.parametrize(("value", "mode"), [("", "ingest"), ("stream", "stream"), (" Ingest ", "ingest"),
                                             ("off", "off")])
def test_insights_counters_take_a_mode(value, mode):
    from chalicelib.config import environment_of

    settings = load_settings(env(INSIGHTS_COUNTERS=value))
    assert settings.insights_counters == mode
    assert load_settings(environment_of(settings)) == settings


@pytest.mark.parametrize("value", ["on", "yes", "streams", "true"])
def test_an_unknown_insights_counters_mode_is_refused_naming_the_modes(value):
    with pytest.raises(ConfigError, match="INSIGHTS_COUNTERS must be stream, ingest or off"):
        load_settings(env(INSIGHTS_COUNTERS=value))


def test_deployed_stages_count_from_the_stream_and_the_local_stage_at_ingest():
    """dynalite has no streams and chalice local runs no event source: the local stage counts at ingest."""
    assert [stage_environment(stage)["INSIGHTS_COUNTERS"] for stage in ("dev", "prod", "local")] == [
        "stream", "stream", "ingest"]


def test_the_events_stream_arn_is_a_stand_in_unless_set_and_checked_when_set():
    from chalicelib.config import STREAM_ARN_FROM_TEMPLATE, events_stream_arn

    arn = "arn:aws:dynamodb:eu-west-1:123456789012:table/recommender-events/stream/2026-05-01T00:00:00.000"
    assert events_stream_arn({}) == events_stream_arn({"EVENTS_STREAM_ARN": " "}) == STREAM_ARN_FROM_TEMPLATE
    assert events_stream_arn({"EVENTS_STREAM_ARN": arn}) == arn
    for wrong in ("arn:aws:dynamodb:eu-west-1:123456789012:table/recommender-events", "recommender-events"):
        with pytest.raises(ConfigError, match="EVENTS_STREAM_ARN must be a DynamoDB stream ARN"):
            events_stream_arn({"EVENTS_STREAM_ARN": wrong})
