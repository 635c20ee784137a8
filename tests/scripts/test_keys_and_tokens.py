"""scripts/keys.py and scripts/user_token.py: keys configured by hash, tokens the stage accepts."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib.access.keys import KeyRing, hash_key
from chalicelib.config import ApiKeyConfig
from chalicelib.resources import Resources
from tests.support import load_script

keys_cli = load_script("keys")
token_cli = load_script("user_token")


def test_a_new_publishable_key_comes_with_its_configuration_entry(capsys):
    assert keys_cli.main(["new", "publishable", "--id", "web-2026-12", "--origin", "https://shop.example",
                          "--origin", "http://localhost:3000"]) == 0

    key_line, entry_line = capsys.readouterr().out.splitlines()
    key = key_line.split(": ", 1)[1]
    entry = json.loads(entry_line.split(": ", 1)[1])
    assert key.startswith("pk_") and entry_line.startswith("add to PUBLISHABLE_KEYS: ")
    assert entry == {"id": "web-2026-12", "sha256": hash_key(key), "origins": ["https://shop.example",
                                                                               "http://localhost:3000"]}
    ring = KeyRing((ApiKeyConfig(entry["id"], "publishable", entry["sha256"], frozenset(entry["origins"])),))
    assert ring.identify(key).key_id == "web-2026-12"


@pytest.mark.parametrize("argv", [
    ["new", "publishable", "--id", "web"],  # a publishable key without origins
    ["new", "publishable", "--id", "web", "--origin", "shop.example"],
    ["new", "secret", "--id", "server", "--origin", "https://shop.example"],
])
def test_keys_without_or_with_wrong_origins_are_refused(argv, capsys):
    assert keys_cli.main(argv) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_hash_prints_what_configuration_holds(capsys):
    assert keys_cli.main(["hash", "sk_abc"]) == 0
    assert capsys.readouterr().out.strip() == hash_key("sk_abc")


def test_a_token_from_the_cli_is_accepted_by_the_stage(settings, monkeypatch, capsys):
    monkeypatch.setattr(token_cli, "settings_for_stage", lambda stage: settings)

    assert token_cli.main(["u-42", "--ttl", "600"]) == 0

    token = capsys.readouterr().out.strip()
    assert Resources(settings).user_tokens.verify(token) == "u-42"


def test_the_cli_says_when_the_stage_has_no_signing_secret(settings, monkeypatch, capsys):
    monkeypatch.setattr(token_cli, "settings_for_stage", lambda stage: replace(settings, user_token_secrets=()))

    assert token_cli.main(["u-42"]) == 2
    assert "USER_TOKEN_SECRETS" in capsys.readouterr().err
