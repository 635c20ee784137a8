"""The one place where configuration enters the application.

Stage environment variables (``.chalice/config.json``) are validated once into
a frozen :class:`Settings`; everything else receives plain arguments.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from chalicelib.errors import ConfigError

PROJECT_DIR = Path(__file__).resolve().parent.parent
CHALICE_CONFIG = PROJECT_DIR / ".chalice" / "config.json"

#: Bounds of the HTTP API; part of the contract, not tunable per stage.
MAX_RESULTS = 100
DEFAULT_RESULTS = 10
MAX_ID_LENGTH = 256
MAX_SESSION_ITEMS = 500


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


def _non_negative_float(env: Mapping[str, str], name: str, default: str) -> float:
    raw = env.get(name, default).strip()
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds, got {raw!r}") from None
    if value < 0 or value != value:
        raise ConfigError(f"{name} must be >= 0, got {raw!r}")
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
    return Settings(
        model_bucket=_text(env, "MODEL_BUCKET"),
        model_prefix=prefix,
        events_table=_text(env, "EVENTS_TABLE"),
        region=_text(env, "AWS_REGION", env.get("AWS_DEFAULT_REGION", "us-east-1")),
        s3_endpoint_url=_optional_url(env, "S3_ENDPOINT_URL"),
        dynamodb_endpoint_url=_optional_url(env, "DYNAMODB_ENDPOINT_URL"),
        model_refresh_seconds=_non_negative_float(env, "MODEL_REFRESH_SECONDS", "60"),
        log_level=log_level,
    )


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


def settings_for_stage(stage: str, overrides: Mapping[str, str] | None = None) -> Settings:
    """Settings of a chalice stage, as the scripts see them.

    The process environment wins over the stage file, so a variable exported
    in the shell (e.g. ``MODEL_BUCKET``) takes precedence. The AWS credential
    variables a stage sets (the local stage's fake keys) are exported into
    this process so boto3 picks them up exactly as under ``chalice local``.
    """
    stage_env = stage_environment(stage)
    merged = {**stage_env, **os.environ, **(overrides or {})}
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        if key in stage_env and key not in os.environ:
            os.environ[key] = stage_env[key]
    return load_settings(merged)
