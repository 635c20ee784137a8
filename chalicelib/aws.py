"""boto3 clients, created once per configuration and reused across warm invocations."""

from __future__ import annotations

import functools
from typing import Any

import boto3
from botocore.config import Config

from chalicelib.config import Settings

# Short timeouts and botocore's standard retry mode (exponential backoff with
# jitter): a request should fail fast rather than hang the Lambda.
_CLIENT_CONFIG = Config(
    connect_timeout=2,
    read_timeout=10,
    retries={"max_attempts": 4, "mode": "standard"},
)


@functools.cache
def s3_client(settings: Settings) -> Any:
    """The S3 client for *settings* (its endpoint when set, AWS otherwise)."""
    return boto3.session.Session().client(
        "s3",
        region_name=settings.region,
        endpoint_url=settings.s3_endpoint_url,
        config=_CLIENT_CONFIG,
    )

