"""API keys: made at random, stored only as their sha256, recognised in constant time.

A *publishable* key may be embedded in a web page or a chatbot's front end:
it opens the read routes and ``POST /events``, from the origins it lists. A
*secret* key, for servers, opens every route. Configuration holds key ids and
hashes, never keys, and several keys of a kind can be valid at once, so a key
is rotated by adding the new one, switching clients, then removing the old.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from chalicelib.config import PUBLISHABLE, SECRET, ApiKeyConfig

_PREFIXES = {PUBLISHABLE: "pk_", SECRET: "sk_"}


def hash_key(raw_key: str) -> str:
    """The sha256 (hex) under which *raw_key* is configured.

    Keys are 32 random bytes, so a plain hash is enough: nothing short of the
    key itself matches it, and there is no dictionary to guess from.
    """
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def new_key(kind: str) -> str:
    """A new random key of *kind* (``pk_...`` or ``sk_...``), to hand out once and configure by its hash."""
    return _PREFIXES[kind] + secrets.token_urlsafe(32)


class KeyRing:
    """The configured keys; recognises a presented key without revealing which comparison failed."""

    def __init__(self, keys: tuple[ApiKeyConfig, ...]) -> None:
        self._keys = list(keys)

    @property
    def origins(self) -> frozenset[str]:
        """Every origin some publishable key allows (what a CORS preflight may be answered for)."""
        return frozenset(origin for key in self._keys for origin in key.origins)

    def origins_of(self, key_id: str | None) -> frozenset[str]:
        """The origins publishable key *key_id* allows (none for a secret key)."""
        return next((key.origins for key in self._keys if key.key_id == key_id), frozenset())

    def identify(self, raw_key: str) -> ApiKeyConfig | None:
        """The configured key *raw_key* is, or None.

        Every configured hash is compared, in constant time, whatever matches.
        """
        digest = hash_key(raw_key)
        found = None
        for key in self._keys:
            if hmac.compare_digest(digest, key.sha256):
                found = key
        return found
