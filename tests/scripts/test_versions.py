"""scripts/versions.py: list, rollback and prune from the command line, on moto."""

from __future__ import annotations

import pytest

from tests.support import load_script, publish_versions, put_model_object

versions_cli = load_script("versions")


@pytest.fixture
def cli(settings, monkeypatch):
    monkeypatch.setattr(versions_cli, "settings_for_stage", lambda stage: settings)
    return versions_cli.main


def cell(header: str, row: str, column: str) -> str:
    """The text of *column* in a row of the aligned table (cells may be blank)."""
    start = header.index(column)
    following = [header.index(c) for c in header.split() if header.index(c) > start]
    return row[start:min(following, default=len(row))].strip()


def test_cli_list_shows_a_table(cli, model_registry, resources, make_tiny_artifact, capsys):
    old = publish_versions(model_registry, make_tiny_artifact, 1, metrics={"ndcg@10": 0.123456})[0]
    new = publish_versions(model_registry, make_tiny_artifact, 1, metrics={"candidate": {"map@10": 0.5}})[0]
    put_model_object(resources, "20000101T000000Z-aaaaaa/model.npz", b"orphan")

    assert cli(["list"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.split() == ["VERSION", "LIVE", "CREATED", "CUTOFF", "ALGORITHM", "NDCG@10", "MAP@10", "FORCED"]
    assert [row.split()[0] for row in rows] == sorted([old, new], reverse=True) + ["20000101T000000Z-aaaaaa"]
    table = {row.split()[0]: {c: cell(header, row, c) for c in header.split()} for row in rows}
    assert [table[new][c] for c in ("LIVE", "NDCG@10", "MAP@10", "FORCED")] == ["*", "-", "0.5000", "no"]
    assert [table[old][c] for c in ("LIVE", "ALGORITHM", "NDCG@10", "MAP@10")] == ["", "test", "0.1235", "-"]
    assert table["20000101T000000Z-aaaaaa"]["CREATED"] == "-"
    assert "error: model version '20000101T000000Z-aaaaaa' has no manifest.json" in rows[-1]


def test_cli_list_empty_store(cli, capsys):
    assert cli(["list"]) == 0
    assert capsys.readouterr().out.startswith("no versions under s3://")


def test_cli_rollback_and_prune(cli, model_registry, make_tiny_artifact, capsys):
    versions = publish_versions(model_registry, make_tiny_artifact, 3)
    assert cli(["rollback"]) == 0
    assert capsys.readouterr().out.strip() == f"live version is now {versions[1]} (was {versions[2]})"
    assert cli(["rollback", "--to", versions[0]]) == 0
    assert model_registry.live_version() == versions[0]

    assert cli(["prune", "--keep", "1"]) == 0
    assert versions[1] in capsys.readouterr().out
    assert [entry.version for entry in model_registry.list_versions()] == [versions[2], versions[0]]


def test_cli_reports_store_errors_on_one_line(cli, model_registry, make_tiny_artifact, capsys):
    publish_versions(model_registry, make_tiny_artifact, 1)
    for argv in (["rollback"], ["prune", "--keep", "0"], ["rollback", "--to", "../x"]):
        assert cli(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
