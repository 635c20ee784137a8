"""Who may call which route, for which user, and from which web origin.

Every route declares an :class:`Access`; :meth:`AccessControl.authorize`
turns the request's key, user token and origin into a :class:`Caller` or a
narrow error (401 for no key, 403 for every other refusal, each saying why).
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

from chalicelib.access.keys import KeyRing
from chalicelib.access.rate_limit import RateLimiter
from chalicelib.access.tokens import UserTokens
from chalicelib.config import PUBLISHABLE, SECRET
from chalicelib.errors import (
    AccessDenied,
    InvalidApiKey,
    KeyNotAllowed,
    MissingApiKey,
    OriginNotAllowed,
    TokenUserMismatch,
    UserTokenRequired,
)

#: Request headers a browser page may send across origins.
ALLOWED_HEADERS = "Content-Type,X-Api-Key,X-User-Token"
#: How long a browser may reuse a preflight answer.
PREFLIGHT_MAX_AGE_SECONDS = 600


class Access(enum.Enum):
    """What a route asks of its caller."""

    #: No key needed (the health summary, the contract); a key that is sent must still be valid.
    PUBLIC = "public"
    #: A publishable key (from one of its origins) or a secret key.
    ANY_KEY = "any_key"
    #: A secret key, or a publishable key with the user's token; the route names the user.
    USER = "user"
    #: A secret key only.
    SECRET = "secret"


@dataclass(frozen=True)
class Caller:
    """Who is calling: the key's id and kind (None without a key) and the user their token vouches for."""

    key_id: str | None = None
    kind: str | None = None
    token_user: str | None = None
    #: Why a token sent to a route open to any key did not verify: raised only if the route needs it.
    token_error: AccessDenied | None = None

    @property
    def is_secret(self) -> bool:
        return self.kind == SECRET

    def require_user(self, user_id: str) -> None:
        """Refuse to act for *user_id* unless this caller may: a secret key may act for anyone.

        Raises
        ------
        TokenUserMismatch
            When a publishable caller's token is another user's.
        """
        if self.kind == SECRET:
            return
        if self.token_user is None and self.token_error is not None:
            raise self.token_error
        if self.token_user is None:
            raise UserTokenRequired("with a publishable key, naming a user needs that user's token in the "
                                    "x-user-token header")
        if self.token_user != user_id:
            raise TokenUserMismatch("the user token is for another user than the one this request is for")


class AccessControl:
    """Keys, user tokens and the event rate limits of one stage.

    Parameters
    ----------
    keys: the configured publishable and secret keys.
    tokens: verifies user tokens.
    key_events, user_events: rate limits of ``POST /events`` per
        publishable key and per user (secret-key callers are not limited).
    """

    def __init__(self, keys: KeyRing, tokens: UserTokens, key_events: RateLimiter, user_events: RateLimiter) -> None:
        self._keys = keys
        self._tokens = tokens
        self._key_events = key_events
        self._user_events = user_events

    @property
    def allowed_origins(self) -> frozenset[str]:
        """Every web origin some publishable key allows."""
        return self._keys.origins

    def authorize(self, access: Access, api_key: str | None, user_token: str | None, origin: str | None) -> Caller:
        """The caller, if the request may use a route of *access*.

        Requests without an ``Origin`` header (servers, curl, a chatbot's
        backend) are not browser pages: only the key and the token count.

        Raises
        ------
        MissingApiKey
            No key, on a route that needs one.
        AccessDenied
            A subclass saying which: unknown key, origin not allowed, a
            publishable key on a secret route, no / bad / expired user token.
        """
        if not api_key:
            if access is Access.PUBLIC:
                return Caller()
            raise MissingApiKey("this route needs an API key in the x-api-key header")
        key = self._keys.identify(api_key)
        if key is None:
            raise InvalidApiKey("the x-api-key header holds no key of this API")
        if key.kind == SECRET:
            return Caller(key.key_id, SECRET)
        if origin is not None and origin not in key.origins:
            raise OriginNotAllowed(f"pages on {origin} may not use publishable key {key.key_id!r}")
        if access is Access.SECRET:
            raise KeyNotAllowed("this route needs a secret key; a publishable key reads recommendations and posts "
                                "events only")
        if access is Access.USER:
            if not user_token:
                raise UserTokenRequired("with a publishable key this route needs the user's token in the "
                                        "x-user-token header")
            return Caller(key.key_id, PUBLISHABLE, self._tokens.verify(user_token))
        # A route open to any key may still act for a user the request names (POST /rank, chat
        # suggestions): a token sent with it is checked, but only refuses the request if the route
        # needs it (an expired token must not break "more like this").
        if user_token:
            try:
                return Caller(key.key_id, PUBLISHABLE, self._tokens.verify(user_token))
            except AccessDenied as exc:
                return Caller(key.key_id, PUBLISHABLE, token_error=exc)
        return Caller(key.key_id, PUBLISHABLE)

    def spend_events(self, caller: Caller, user_ids: list[str]) -> None:
        """Count *user_ids* (one per event) against the caller's key and users.

        Raises
        ------
        RateLimited
            With the seconds to wait.
        """
        if caller.kind != PUBLISHABLE:
            return
        for user_id, count in Counter(user_ids).items():
            self._user_events.spend(user_id, count)
        self._key_events.spend(caller.key_id, len(user_ids))

    def cors_headers(self, origin: str | None, caller: Caller | None) -> dict[str, str]:
        """CORS headers for an answer to a page on *origin*: only for the origins of a publishable key.

        With *caller* unknown (the request was refused before) any
        publishable key's origin is answered, so the page can read the error.
        """
        if origin is None:
            return {}
        if caller is not None and caller.kind is not None:
            allowed = caller.kind == PUBLISHABLE and origin in self._keys.origins_of(caller.key_id)
        else:
            allowed = origin in self._keys.origins
        if not allowed:
            return {}
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin", "Access-Control-Expose-Headers": "Retry-After"}

    def preflight_headers(self, origin: str | None, methods: list[str]) -> dict[str, str]:
        """The answer to a browser's CORS preflight from *origin* for a path serving *methods*.

        Raises
        ------
        OriginNotAllowed
            When no publishable key lists *origin*.
        """
        if origin is None or origin not in self._keys.origins:
            raise OriginNotAllowed(f"no publishable key of this API may be used from {origin or 'an unnamed origin'}")
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ",".join(sorted({*methods, "OPTIONS"})),
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_SECONDS),
            "Vary": "Origin",
        }
