"""Signing secrets inline or in Secrets Manager (moto server): read once, kept, read again when due."""

from __future__ import annotations

import uuid

import boto3
import pytest

from chalicelib.access.signing_secrets import SigningSecrets
from chalicelib.config import SigningSecretConfig
from chalicelib.errors import ConfigError
from tests.support import ClientProxy, FakeClock, unreachable_client


class CountingClient:
    """A real Secrets Manager client that counts its reads."""

    def __init__(self, client):
        self.client, self.reads = client, 0

    def get_secret_value(self, **kwargs):
        self.reads += 1
        return self.client.get_secret_value(**kwargs)


@pytest.fixture
def secrets_manager(moto_server):
    return boto3.session.Session().client("secretsmanager", region_name="us-east-1", endpoint_url=moto_server.url)


def test_inline_secrets_need_no_client_and_keep_their_order():
    secrets = SigningSecrets((SigningSecretConfig("b", value="2" * 32), SigningSecretConfig("a", value="1" * 32)))
    assert list(secrets.current().items()) == [("b", "2" * 32), ("a", "1" * 32)]


def test_a_referenced_secret_is_read_once_then_again_when_the_cache_is_due(secrets_manager):
    arn = secrets_manager.create_secret(Name=f"signing-{uuid.uuid4().hex[:8]}", SecretString="s" * 40)["ARN"]
    client, clock = CountingClient(secrets_manager), FakeClock()
    secrets = SigningSecrets((SigningSecretConfig("2026", secret_arn=arn),), client, cache_seconds=300, clock=clock)

    assert secrets.current() == {"2026": "s" * 40}
    clock.now += 299
    assert secrets.current() == {"2026": "s" * 40} and client.reads == 1

    secrets_manager.put_secret_value(SecretId=arn, SecretString="t" * 40)  # rotated in Secrets Manager
    clock.now += 1
    assert secrets.current() == {"2026": "t" * 40} and client.reads == 2


def test_when_secrets_manager_fails_the_last_secret_read_is_kept(secrets_manager):
    arn = secrets_manager.create_secret(Name=f"signing-{uuid.uuid4().hex[:8]}", SecretString="s" * 40)["ARN"]
    clock, proxy = FakeClock(), ClientProxy(secrets_manager)
    secrets = SigningSecrets((SigningSecretConfig("k", secret_arn=arn),), proxy, cache_seconds=1, clock=clock)
    assert secrets.current() == {"k": "s" * 40}

    proxy.target = unreachable_client("secretsmanager")
    clock.now += 5
    assert secrets.current() == {"k": "s" * 40}


def test_a_secret_that_cannot_be_read_at_first_is_a_configuration_error():
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"
    secrets = SigningSecrets((SigningSecretConfig("k", secret_arn=arn),), unreachable_client("secretsmanager"))
    with pytest.raises(ConfigError, match="cannot read user-token secret 'k'"):
        secrets.current()
