"""User tokens: a website's backend vouches that a visitor is a given user.

A token is a JSON Web Token signed with HMAC-SHA256 (``HS256``): claims
``sub`` (the user id) and ``exp`` (unix seconds), header ``kid`` naming the
signing secret. Any JWT library makes one; README has a Python and a
JavaScript example. Several secrets can be valid at once (rotation): tokens
are signed with the first and verified with the one their ``kid`` names.
"""

from __future__ import annotations

import time
import unicodedata

import jwt

from chalicelib.access.signing_secrets import SigningSecrets
from chalicelib.errors import ConfigError, ExpiredUserToken, InvalidUserToken

ALGORITHM = "HS256"


def make_user_token(user_id: str, secret: str, secret_id: str, ttl_seconds: int, now: float | None = None) -> str:
    """A token saying the bearer is *user_id*, valid *ttl_seconds* from *now*."""
    issued = int(time.time() if now is None else now)
    return jwt.encode({"sub": user_id, "exp": issued + ttl_seconds}, secret, algorithm=ALGORITHM,
                      headers={"kid": secret_id})


class UserTokens:
    """Makes and verifies user tokens with the configured signing secrets.

    Parameters
    ----------
    secrets: the signing secrets (the first one signs).
    max_ttl_seconds: tokens valid further ahead than this are refused, so a
        leaked token cannot be good for ever.
    """

    def __init__(self, secrets: SigningSecrets, max_ttl_seconds: int) -> None:
        self._secrets = secrets
        self._max_ttl = max_ttl_seconds

    def current_secrets(self) -> dict[str, str]:
        """Secret id -> secret, as configured now (the first one signs)."""
        return self._secrets.current()

    def sign(self, user_id: str, ttl_seconds: int, now: float | None = None) -> str:
        """A token for *user_id*, valid *ttl_seconds* (at most the maximum), signed with the first secret.

        Raises
        ------
        ConfigError
            When no signing secret is configured.
        """
        current = self._secrets.current()
        if not current:
            raise ConfigError("no user-token signing secret is configured (USER_TOKEN_SECRETS)")
        secret_id, secret = next(iter(current.items()))
        return make_user_token(user_id, secret, secret_id, min(ttl_seconds, self._max_ttl), now)

    def verify(self, token: str, now: float | None = None) -> str:
        """The user id *token* vouches for.

        Raises
        ------
        ExpiredUserToken
            When its ``exp`` has passed.
        InvalidUserToken
            When it is malformed, signed with an unknown secret or a wrong
            signature, lacks ``sub`` or ``exp``, or expires too far ahead.
        """
        moment = time.time() if now is None else now
        try:
            secret_id = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError as exc:
            raise InvalidUserToken(f"the user token is malformed: {exc}") from None
        secret = self._secrets.current().get(secret_id) if isinstance(secret_id, str) else None
        if secret is None:
            raise InvalidUserToken("the user token names no known signing secret (kid)")
        try:
            # The expiry is checked below against *moment*, so tests and callers share one clock.
            claims = jwt.decode(token, secret, algorithms=[ALGORITHM],
                                options={"require": ["sub", "exp"], "verify_exp": False})
        except jwt.PyJWTError as exc:
            raise InvalidUserToken(f"the user token is not valid: {exc}") from None
        expires = claims["exp"]
        if not isinstance(expires, (int, float)) or isinstance(expires, bool):
            raise InvalidUserToken("the user token's exp is not a number")
        if expires <= moment:
            raise ExpiredUserToken("the user token has expired")
        if expires > moment + self._max_ttl:
            raise InvalidUserToken(f"the user token is valid for more than {self._max_ttl} s")
        user_id = claims["sub"]
        if not isinstance(user_id, str) or not user_id:
            raise InvalidUserToken("the user token's sub is not a user id")
        # Request ids are compared in NFC (eventlog.rules.check_id): a backend's "Jose\u0301" is "José".
        return unicodedata.normalize("NFC", user_id)
