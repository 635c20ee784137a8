"""scripts/batch_recommend.py: the live model's top-N of every user into S3, from the command line."""

from __future__ import annotations

import json

import pytest

from tests.support import load_script

batch_cli = load_script("batch_recommend")


@pytest.fixture
def cli(dynamodb_settings, monkeypatch):
    monkeypatch.setattr(batch_cli, "settings_for_stage", lambda stage: dynamodb_settings)
    return batch_cli.main


def test_every_user_of_the_live_model_lands_in_s3(cli, dynamodb_resources, make_tiny_artifact, capsys):
    dynamodb_resources.provision()
    version = dynamodb_resources.model_registry.publish(make_tiny_artifact())
    bucket = dynamodb_resources.settings.model_bucket

    assert cli(["--to", f"s3://{bucket}/campaigns", "--n", "2"]) == 0

    out = capsys.readouterr().out
    assert f"3 users x top 2 from {version} in 1 parts" in out
    manifest = json.loads(dynamodb_resources.s3.get_object(
        Bucket=bucket, Key=f"campaigns/{version}/_manifest.json")["Body"].read())
    assert manifest["users"] == 3 and manifest["erased_users"] == 0
    body = dynamodb_resources.s3.get_object(Bucket=bucket, Key=f"campaigns/{version}/part-00000.jsonl")["Body"].read()
    assert [json.loads(line)["user_id"] for line in body.decode().splitlines()] == ["u0", "u1", "u2"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--to", "campaigns"], "--to must be s3://bucket/prefix"),
    (["--to", "s3://bucket/x", "--n", "0"], "--n must be between 1 and 1000"),
])
def test_bad_arguments_are_refused(cli, argv, message, capsys):
    with pytest.raises(SystemExit):
        cli(argv)
    assert message in capsys.readouterr().err


def test_without_a_live_model_it_says_so(cli, dynamodb_resources, capsys):
    dynamodb_resources.provision()
    assert cli(["--to", f"s3://{dynamodb_resources.settings.model_bucket}/x"]) == 2
    assert "no model is published yet" in capsys.readouterr().err
