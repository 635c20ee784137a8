"""User tokens: HS256 JSON Web Tokens naming a user and an expiry, verified against rotating secrets."""

from __future__ import annotations

import base64
import json

import jwt
import pytest

from chalicelib.access.signing_secrets import SigningSecrets
from chalicelib.access.tokens import UserTokens, make_user_token
from chalicelib.config import SigningSecretConfig
from chalicelib.errors import ConfigError, ExpiredUserToken, InvalidUserToken

NOW = 1_800_000_000
NEW, OLD = "n" * 40, "o" * 40


def tokens(*secrets: tuple[str, str], max_ttl: int = 86400) -> UserTokens:
    return UserTokens(SigningSecrets(tuple(SigningSecretConfig(i, value=v) for i, v in secrets)), max_ttl)


def test_a_token_signed_with_the_first_secret_names_its_user():
    ring = tokens(("2026-12", NEW), ("2026-11", OLD))
    token = ring.sign("u-42", ttl_seconds=600, now=NOW)

    assert jwt.get_unverified_header(token)["kid"] == "2026-12"
    assert jwt.decode(token, NEW, algorithms=["HS256"], options={"verify_exp": False}) == {
        "sub": "u-42", "exp": NOW + 600}
    assert ring.verify(token, now=NOW + 599) == "u-42"


def test_tokens_of_the_previous_secret_still_verify_during_a_rotation():
    old_token = make_user_token("u-1", OLD, "2026-11", 600, now=NOW)

    assert tokens(("2026-12", NEW), ("2026-11", OLD)).verify(old_token, now=NOW) == "u-1"
    with pytest.raises(InvalidUserToken, match="no known signing secret"):
        tokens(("2026-12", NEW)).verify(old_token, now=NOW)  # rotation finished: the old secret is gone


def test_an_expired_token_is_refused_as_expired():
    token = make_user_token("u-1", NEW, "k", 600, now=NOW)

    with pytest.raises(ExpiredUserToken):
        tokens(("k", NEW)).verify(token, now=NOW + 600)


def test_a_token_valid_too_far_ahead_is_refused():
    token = make_user_token("u-1", NEW, "k", 7200, now=NOW)

    with pytest.raises(InvalidUserToken, match="more than 3600 s"):
        tokens(("k", NEW), max_ttl=3600).verify(token, now=NOW)
    assert tokens(("k", NEW), max_ttl=3600).sign("u", ttl_seconds=7200, now=NOW) == make_user_token(
        "u", NEW, "k", 3600, now=NOW)  # signing caps the lifetime instead


def _forged(header: dict, claims: dict, signature: bytes = b"") -> str:
    def part(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    return f"{part(json.dumps(header).encode())}.{part(json.dumps(claims).encode())}.{part(signature)}"


@pytest.mark.parametrize("token", [
    pytest.param("not-a-token", id="not-a-jwt"),
    pytest.param(make_user_token("u-1", "x" * 40, "k", 600, now=NOW), id="wrong-secret-same-kid"),
    pytest.param(_forged({"alg": "none", "kid": "k"}, {"sub": "u-1", "exp": NOW + 60}), id="alg-none"),
    pytest.param(jwt.encode({"exp": NOW + 60}, NEW, algorithm="HS256", headers={"kid": "k"}), id="no-sub"),
    pytest.param(jwt.encode({"sub": "u-1"}, NEW, algorithm="HS256", headers={"kid": "k"}), id="no-exp"),
    pytest.param(jwt.encode({"sub": 7, "exp": NOW + 60}, NEW, algorithm="HS256", headers={"kid": "k"}),
                 id="sub-not-a-string"),
    pytest.param(jwt.encode({"sub": "u-1", "exp": NOW + 60}, NEW, algorithm="HS256"), id="no-kid"),
])
def test_malformed_forged_or_incomplete_tokens_are_refused(token):
    with pytest.raises(InvalidUserToken):
        tokens(("k", NEW)).verify(token, now=NOW)


def test_signing_without_a_secret_is_a_configuration_error():
    with pytest.raises(ConfigError, match="USER_TOKEN_SECRETS"):
        tokens().sign("u-1", 60)
