"""Structured logs and CloudWatch metrics, with aws-lambda-powertools.

Each request gives one JSON log line (:func:`log_request`) and one
embedded-metric-format blob (:func:`flush_request_metrics`), both on stdout,
which Lambda sends to CloudWatch Logs; CloudWatch extracts the metrics from
the blob. Log lines never hold an API key, a user token or a raw user id:
users appear as :func:`user_reference`, a keyed hash.
"""

from __future__ import annotations

import hashlib
import hmac
import sys
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import MetricUnit

from chalicelib.config import APP_NAME

NAMESPACE = "RecommenderAPI"

class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is at the moment (Lambda's, or a test's capture)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


logger = Logger(service=APP_NAME, stream=_CurrentStdout())
metrics = Metrics(namespace=NAMESPACE, service=APP_NAME)


def configure(level: str) -> None:
    """Set the log level, and format the library's own loggers (``chalicelib.*``) as JSON lines too."""
    logger.setLevel(level)
    copy_config_to_registered_loggers(source_logger=logger, include={"chalicelib"}, log_level=level)


def user_reference(user_id: str, key: bytes) -> str:
    """A stable, keyed hash of *user_id* for logs: the same user gives the same reference, which
    cannot be turned back into the id without *key* (a guessable id cannot be found by hashing guesses)."""
    return hmac.new(key, user_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]


def log_request(**fields: Any) -> None:
    """The one line of a request: method, route, status, latency, key id, user reference, model, strategy."""
    logger.info("request", extra={name: value for name, value in fields.items() if value is not None})


def count(name: str, value: float = 1) -> None:
    """Add *value* to the metric *name* of the current request."""
    metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def flush_request_metrics(route: str, latency_ms: float) -> None:
    """Publish the current request's metrics (one EMF blob), with its route as dimension."""
    metrics.add_dimension(name="route", value=route)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Latency", unit=MetricUnit.Milliseconds, value=latency_ms)
    metrics.flush_metrics()


class ModelReloads:
    """Counts the live model's reloads and reload failures (LiveModel calls it)."""

    def loaded(self, version: str) -> None:
        count("ModelReloads")

    def failed(self, message: str) -> None:
        count("ModelReloadFailures")


