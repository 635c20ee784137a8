"""Listing, deleting, pruning and rolling back model versions, and the scripts/versions.py CLI, on moto."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from chalicelib.artifact import ModelStore, serialize
from chalicelib.aws import s3_client
from chalicelib.errors import ArtifactError

_SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "versions.py"
_spec = importlib.util.spec_from_file_location("versions_cli", _SCRIPT)
versions_cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(versions_cli)


def publish_versions(store: ModelStore, make_tiny_artifact, count: int, **overrides) -> list[str]:
    """Publish *count* versions and make the newest live; their ids, oldest first.

    Versions published within one second are ordered by their random suffix,
    not by publish order, so the tests use the ids' sort order throughout.
    """
    versions = sorted(store.publish(make_tiny_artifact(**overrides), make_live=False) for _ in range(count))
    store.set_live(versions[-1])
    return versions


def put(settings, key: str, body: bytes) -> None:
    s3_client(settings).put_object(Bucket=settings.model_bucket, Key=f"{settings.model_prefix}/{key}", Body=body)


def keys(settings) -> set[str]:
    response = s3_client(settings).list_objects_v2(Bucket=settings.model_bucket)
    return {obj["Key"] for obj in response.get("Contents", [])}


def test_list_versions_newest_first_with_live_flag_and_manifest_fields(model_store, make_tiny_artifact):
    metrics = {"candidate": {"ndcg@10": 0.5, "map@10": 0.25}}
    old, new = publish_versions(model_store, make_tiny_artifact, 2, metrics=metrics)
    model_store.set_live(old)

    listed = model_store.list_versions()
    assert [entry["version"] for entry in listed] == [new, old]
    assert [entry["live"] for entry in listed] == [False, True]
    entry = listed[1]
    assert entry["algorithm"] == "test" and entry["metrics"] == metrics and entry["forced"] is False
    assert entry["training_cutoff"] == "2026-01-01T00:00:00+00:00"
    assert entry["counts"] == {"users": 3, "items": 4, "interactions": 3}
    assert entry["created_at"] and "error" not in entry


def test_list_versions_follows_pages_and_lists_broken_folders_with_an_error(model_store, settings, make_tiny_artifact):
    versions = publish_versions(model_store, make_tiny_artifact, 3)
    put(settings, "20000101T000000Z-aaaaaa/model.npz", b"orphan")  # no manifest
    put(settings, "20000101T000000Z-bbbbbb/manifest.json", b"{not json")
    put(settings, ".hidden/notes.txt", b"not a version folder")
    model_store._LIST_PAGE_SIZE = 2  # several pages for 5 folders and latest.json

    listed = model_store.list_versions()
    assert [entry["version"] for entry in listed] == [
        *reversed(versions), "20000101T000000Z-bbbbbb", "20000101T000000Z-aaaaaa"
    ]
    assert "not valid JSON" in listed[3]["error"] and "no manifest.json" in listed[4]["error"]
    assert listed[3]["algorithm"] is None and listed[3]["live"] is False
    assert all("error" not in entry for entry in listed[:3])


def test_empty_store_lists_nothing(model_store):
    assert model_store.list_versions() == []


def test_delete_version_removes_every_file_and_refuses_the_live_one(model_store, settings, make_tiny_artifact):
    old, live = publish_versions(model_store, make_tiny_artifact, 2)
    assert model_store.put_file(old, "report.md", b"# report", "text/markdown") == f"models/{old}/report.md"
    model_store._LIST_PAGE_SIZE = 2  # the three files of *old* span two pages

    model_store.delete_version(old)
    assert not any(key.startswith(f"models/{old}/") for key in keys(settings))
    with pytest.raises(ArtifactError, match="is live"):
        model_store.delete_version(live)
    with pytest.raises(ArtifactError, match="does not exist"):
        model_store.delete_version(old)
    assert model_store.load(live).version == live


def test_prune_keeps_the_newest_versions(model_store, make_tiny_artifact):
    versions = publish_versions(model_store, make_tiny_artifact, 4)
    assert model_store.prune(2) == [versions[1], versions[0]]
    assert [entry["version"] for entry in model_store.list_versions()] == [versions[3], versions[2]]
    assert model_store.prune(2) == []


def test_prune_always_keeps_an_old_live_version(model_store, make_tiny_artifact):
    versions = publish_versions(model_store, make_tiny_artifact, 4)
    model_store.rollback(to=versions[0])
    assert model_store.prune(1) == [versions[2], versions[1]]
    assert [(e["version"], e["live"]) for e in model_store.list_versions()] == [(versions[3], False), (versions[0], True)]


def test_prune_refuses_to_keep_fewer_than_one(model_store, make_tiny_artifact):
    publish_versions(model_store, make_tiny_artifact, 2)
    for keep in (0, -1, 1.5, True):
        with pytest.raises(ArtifactError, match="keep must be"):
            model_store.prune(keep)
    assert len(model_store.list_versions()) == 2


def test_rollback_skips_a_corrupted_version(model_store, settings, make_tiny_artifact):
    oldest, corrupted, live = publish_versions(model_store, make_tiny_artifact, 3)
    put(settings, f"{corrupted}/model.npz", b"garbage")

    assert model_store.rollback() == oldest
    assert model_store.live_version() == oldest
    with pytest.raises(ArtifactError, match="no valid model version older"):
        model_store.rollback()
    with pytest.raises(ArtifactError, match="sha256"):
        model_store.rollback(to=corrupted)
    assert model_store.rollback(to=live) == live
    assert model_store.live_version() == live


def test_rollback_needs_an_older_version(model_store, make_tiny_artifact):
    with pytest.raises(ArtifactError, match="no live version"):
        model_store.rollback()
    (only,) = publish_versions(model_store, make_tiny_artifact, 1)
    with pytest.raises(ArtifactError, match="no valid model version older"):
        model_store.rollback()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        model_store.rollback(to="20990101T000000Z-ffffff")
    assert model_store.live_version() == only


def test_forced_flag_comes_from_the_manifest(model_store, make_tiny_artifact):
    payload, manifest = serialize(make_tiny_artifact(), "20260101T000000Z-000001", "2026-01-01T00:00:00+00:00")
    model_store.upload(payload, {**manifest, "forced": True})
    assert model_store.list_versions()[0]["forced"] is True


def test_put_file_rejects_bad_names(model_store, settings, make_tiny_artifact):
    (version,) = publish_versions(model_store, make_tiny_artifact, 1)
    for name in ["a/b.md", "model.npz", "manifest.json", "", "..", ".hidden", "../x"]:
        with pytest.raises(ArtifactError, match="invalid file name"):
            model_store.put_file(version, name, b"x", "text/plain")
    assert keys(settings) == {f"models/{version}/model.npz", f"models/{version}/manifest.json", "models/latest.json"}


def test_put_file_needs_an_existing_version(model_store):
    with pytest.raises(ArtifactError, match="no manifest.json"):
        model_store.put_file("20990101T000000Z-ffffff", "report.md", b"x", "text/markdown")


@pytest.fixture
def cli(settings, monkeypatch):
    monkeypatch.setattr(versions_cli, "settings_for_stage", lambda stage: settings)
    return versions_cli.main


def cell(header: str, row: str, column: str) -> str:
    """The text of *column* in a row of the aligned table (cells may be blank)."""
    start = header.index(column)
    following = [header.index(c) for c in header.split() if header.index(c) > start]
    return row[start:min(following, default=len(row))].strip()


def test_cli_list_shows_a_table(cli, model_store, settings, make_tiny_artifact, capsys):
    old = publish_versions(model_store, make_tiny_artifact, 1, metrics={"ndcg@10": 0.123456})[0]
    new = publish_versions(model_store, make_tiny_artifact, 1, metrics={"candidate": {"map@10": 0.5}})[0]
    put(settings, "20000101T000000Z-aaaaaa/model.npz", b"orphan")

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


def test_cli_rollback_and_prune(cli, model_store, make_tiny_artifact, capsys):
    versions = publish_versions(model_store, make_tiny_artifact, 3)
    assert cli(["rollback"]) == 0
    assert capsys.readouterr().out.strip() == f"live version is now {versions[1]} (was {versions[2]})"
    assert cli(["rollback", "--to", versions[0]]) == 0
    assert model_store.live_version() == versions[0]

    assert cli(["prune", "--keep", "1"]) == 0
    assert versions[1] in capsys.readouterr().out
    assert [entry["version"] for entry in model_store.list_versions()] == [versions[2], versions[0]]


def test_cli_reports_store_errors_on_one_line(cli, model_store, make_tiny_artifact, capsys):
    publish_versions(model_store, make_tiny_artifact, 1)
    for argv in (["rollback"], ["prune", "--keep", "0"], ["rollback", "--to", "../x"]):
        assert cli(argv) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("error: ") and captured.err.count("\n") == 1
