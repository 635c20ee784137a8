"""API keys: random, configured by hash only, recognised by kind with their origins."""

from __future__ import annotations

import hashlib

from chalicelib.access.keys import KeyRing, hash_key, new_key
from chalicelib.config import PUBLISHABLE, SECRET, ApiKeyConfig


def test_new_keys_are_random_and_say_their_kind():
    first, second = new_key(PUBLISHABLE), new_key(PUBLISHABLE)
    assert first.startswith("pk_") and new_key(SECRET).startswith("sk_")
    assert first != second and len(first) > 40


def test_a_key_is_configured_by_its_sha256():
    assert hash_key("pk_abc") == hashlib.sha256(b"pk_abc").hexdigest()


def test_the_ring_recognises_each_key_and_nothing_else():
    web, old_web = new_key(PUBLISHABLE), new_key(PUBLISHABLE)
    server = new_key(SECRET)
    ring = KeyRing((
        ApiKeyConfig("web-new", PUBLISHABLE, hash_key(web), frozenset({"https://a.example"})),
        ApiKeyConfig("web-old", PUBLISHABLE, hash_key(old_web), frozenset({"https://b.example"})),
        ApiKeyConfig("server", SECRET, hash_key(server)),
    ))

    assert ring.identify(web).key_id == "web-new"
    assert ring.identify(old_web).key_id == "web-old"  # two valid at once: rotation
    assert ring.identify(server).kind == SECRET
    assert ring.identify(hash_key(web)) is None  # the hash itself is no key
    assert ring.identify(web + "x") is None and ring.identify("") is None
    assert ring.origins == {"https://a.example", "https://b.example"}
    assert ring.origins_of("web-old") == {"https://b.example"} and ring.origins_of("server") == frozenset()
