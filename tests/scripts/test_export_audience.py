"""scripts/export_audience.py: an item's or a category's audience into S3 as CSV, from the command line."""

from __future__ import annotations

import json

import pytest

from chalicelib.catalog.rules import check_catalog_item
from tests.support import load_script

audience_cli = load_script("export_audience")


@pytest.fixture
def cli(dynamodb_settings, monkeypatch):
    monkeypatch.setattr(audience_cli, "settings_for_stage", lambda stage: dynamodb_settings)
    return audience_cli.main


def read(resources, key):
    return resources.s3.get_object(Bucket=resources.settings.model_bucket, Key=key)["Body"].read().decode()


def test_an_items_audience_lands_in_s3_without_erased_users(cli, dynamodb_resources, make_tiny_artifact, capsys):
    version = dynamodb_resources.model_registry.publish(make_tiny_artifact())
    dynamodb_resources.event_log.erase("u2")
    bucket = dynamodb_resources.settings.model_bucket

    assert cli(["--item", "i1", "--to", f"s3://{bucket}/audiences/i1"]) == 0

    out = capsys.readouterr().out
    assert f"2 users from {version} in 1 parts" in out and "left out: 0 engaged, 1 erased" in out
    assert read(dynamodb_resources, f"audiences/i1/{version}/part-00000.csv") == "user_id,score\nu1,1.0\nu0,0.0\n"
    manifest = json.loads(read(dynamodb_resources, f"audiences/i1/{version}/_manifest.json"))
    assert (manifest["item_id"], manifest["users"], manifest["erased_users"]) == ("i1", 2, 1)


def test_a_categorys_audience_cut_to_its_best_share(cli, dynamodb_resources, make_tiny_artifact, capsys):
    version = dynamodb_resources.model_registry.publish(make_tiny_artifact())
    dynamodb_resources.catalog.put([check_catalog_item({"title": f"Item {n}", "categories": ["Sci-Fi"]},
                                                       item_id=f"i{n}") for n in (1, 2)])
    bucket = dynamodb_resources.settings.model_bucket

    assert cli(["--category", "Sci-Fi", "--top-share", "0.5", "--include-engaged",
                "--to", f"s3://{bucket}/sci-fi"]) == 0

    assert read(dynamodb_resources, f"sci-fi/{version}/part-00000.csv") == "user_id,score\nu2,1.5\nu1,1.0\n"
    manifest = json.loads(read(dynamodb_resources, f"sci-fi/{version}/_manifest.json"))
    assert (manifest["category"], manifest["top_share"], manifest["include_engaged"]) == ("Sci-Fi", 0.5, True)


@pytest.mark.parametrize(("argv", "message"), [
    (["--item", "i1", "--to", "audiences"], "--to must be s3://bucket/prefix"),
    (["--to", "s3://bucket/x"], "one of the arguments --item --category is required"),
    (["--item", "i1", "--category", "c", "--to", "s3://bucket/x"], "not allowed with argument"),
    (["--item", "i1", "--to", "s3://bucket/x", "--top-share", "1.5"], "must be in (0, 1]"),
    (["--item", "i1", "--to", "s3://bucket/x", "--top-share", "0.5", "--threshold", "1"], "not allowed with argument"),
    (["--item", "i1", "--to", "s3://bucket/x", "--chunk-users", "0"], "must be at least 1"),
])
def test_bad_arguments_are_refused(cli, argv, message, capsys):
    with pytest.raises(SystemExit):
        cli(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["--item", "nope"], "item 'nope' is not in the live model"),
    (["--category", "Westerns"], "no item of the live model is in category 'Westerns'"),
])
def test_an_unknown_item_or_category_is_an_error(cli, dynamodb_resources, make_tiny_artifact, argv, message, capsys):
    dynamodb_resources.model_registry.publish(make_tiny_artifact())
    assert cli([*argv, "--to", f"s3://{dynamodb_resources.settings.model_bucket}/x"]) == 2
    assert message in capsys.readouterr().err


def test_without_a_live_model_it_says_so(cli, dynamodb_resources, capsys):
    assert cli(["--item", "i1", "--to", f"s3://{dynamodb_resources.settings.model_bucket}/x"]) == 2
    assert "no model is published yet" in capsys.readouterr().err
