"""scripts/insights_report.py end to end: moto S3 with a published model, a fake source, a local webhook."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from chalicelib.reports.weekly import TrendingRow
from chalicelib.resources import Resources
from tests.conftest import with_counters
from tests.reports.test_weekly import NOW, PNG_MAGIC, RETRAIN_METRICS
from tests.support import FakeInsightsSource, WebhookReceiver, content_row, load_script


@pytest.fixture(name="settings")
def counting_settings(settings):
    """The test's settings, counting at ingest (the suite's default is off)."""
    return with_counters(settings)


insights_cli = load_script("insights_report")


@pytest.fixture
def source():
    return FakeInsightsSource(
        items=[content_row("i0", 1_500, 1_000, title="Toy Story", clicks=150, purchases=12),
               content_row("i1", 40, 100, title="Fargo", clicks=2),
               content_row("i2", 700, 0, title="Heat")],
        categories=[content_row("Comedy", 2_200, 2_000, clicks=200, purchases=30)],
        trending=[TrendingRow("i2", "Heat", ("Action",), 4.5, 100.0, 22.2)])


@pytest.fixture
def use_settings(bucket_settings, monkeypatch):
    """The stage's settings are ``bucket_settings`` (S3 only: the report reads no table) with *overrides*."""
    def use(**overrides):
        monkeypatch.setattr(insights_cli, "settings_for_stage", lambda stage: replace(bucket_settings, **overrides))
    use()
    return use


@pytest.fixture
def resources(bucket_settings):
    return Resources(bucket_settings)


def test_writes_publishes_and_posts_the_weekly_report(use_settings, resources, make_tiny_artifact, source, tmp_path,
                                                      capsys):
    registry = resources.model_registry
    version = registry.publish(make_tiny_artifact(metrics=RETRAIN_METRICS))
    bucket = resources.settings.model_bucket

    with WebhookReceiver() as receiver:
        use_settings(insights_webhook_url=receiver.url)
        code = insights_cli.main(["--out", str(tmp_path), "--publish", "--post"], source=source, now=NOW)

    out = capsys.readouterr().out
    assert code == 0, out
    page = (tmp_path / "insights-2026-03-02.md").read_text()
    assert "| 1 | Toy Story (`i0`) | 1,500 | +50% |" in page and "| 1 | Fargo (`i1`) | 40 | 100 | -60% |" in page
    assert f"`{version}`" in page and "0.1867 (popularity 0.1084)" in page
    assert "![Views of the top items, this window and the one before](insights-2026-03-02.png)" in page
    assert (tmp_path / "insights-2026-03-02.png").read_bytes().startswith(PNG_MAGIC)
    for key in ("insights/insights-2026-03-02.md", "insights/latest.md"):
        assert resources.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode() == page
    assert resources.s3.get_object(Bucket=bucket, Key="insights/insights-2026-03-02.png")["Body"].read() == \
        (tmp_path / "insights-2026-03-02.png").read_bytes()
    [(content_type, body)] = receiver.requests
    message = json.loads(body)
    assert content_type.startswith("application/json")
    assert f"`s3://{bucket}/insights/insights-2026-03-02.md`" in json.dumps(message)
    assert "posted to the webhook at 127.0.0.1" in out and "secret-token" not in out


def test_the_command_line_url_wins_and_a_refusal_is_an_error(use_settings, resources, source, tmp_path, capsys):
    use_settings(insights_webhook_url="https://hooks.example/never-called")

    with WebhookReceiver([(404, "no_service", {})]) as receiver:
        code = insights_cli.main(["--out", str(tmp_path), "--post", "--webhook-url", receiver.url],
                                 source=source, now=NOW)

    err = capsys.readouterr().err
    assert code == 2 and len(receiver.requests) == 1
    assert "refused the message: HTTP 404: no_service" in err and "secret-token" not in err
    assert (tmp_path / "insights-2026-03-02.md").is_file()  # written before posting


@pytest.mark.parametrize(("argv", "message"), [
    (["--post"], "--post needs a webhook: set INSIGHTS_WEBHOOK_URL or pass --webhook-url"),
    (["--post", "--webhook-url", "ftp://hooks.example/secret-token"], "--webhook-url must be an http(s) URL"),
])
def test_posting_without_a_usable_webhook_is_an_error(use_settings, source, tmp_path, capsys, argv, message):
    assert insights_cli.main(["--out", str(tmp_path), *argv], source=source, now=NOW) == 2

    err = capsys.readouterr().err
    assert message in err and "secret-token" not in err
    assert not (tmp_path / "insights-2026-03-02.md").exists()


def test_bad_arguments_are_refused(capsys):
    with pytest.raises(SystemExit):
        insights_cli.main(["--window", "30d"])
    assert "choose from '1h', '24h', '7d', '28d'" in capsys.readouterr().err


def test_the_stage_counters_are_the_default_source(settings, monkeypatch, tmp_path):
    monkeypatch.setattr(insights_cli, "settings_for_stage", lambda stage: settings)  # tables provisioned
    assert insights_cli.main(["--out", str(tmp_path), "--window", "24h"], now=NOW) == 0

    page = (tmp_path / "insights-2026-03-02.md").read_text()
    assert "The 24 hours to 2026-03-02" in page and "_No item was viewed in the window._" in page
