"""scripts/retrain.py: publishes, refuses with a margin, reports errors, on moto."""

from __future__ import annotations

from chalicelib.reports.store import InsightsReports
from chalicelib.training import spark_als
from tests.conftest import CPU_HEAVY_GROUP
from tests.support import load_script
from tests.training.test_export import event_item, write_export
from tests.training.test_retrain import PNG_MAGIC, grouped_events, recent_grouped_events, write_events
from tests.training.test_spark_als import SPARK_GOOD

retrain_cli = load_script("retrain")


def test_cli_publishes_then_refuses_with_a_margin(settings, resources, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(retrain_cli, "settings_for_stage", lambda stage: settings)
    write_events(resources, recent_grouped_events(n_users=40, n_items=30, per_user=8))
    registry = resources.model_registry

    code = retrain_cli.main(["--budget", "1", "--report-dir", str(tmp_path / "first")])

    out = capsys.readouterr().out
    version = registry.live_version()
    assert code == 0, out
    assert version is not None and f"PUBLISHED {version}:" in out
    assert "(time split)" in out and f"retraining from {settings.events_table}" in out
    assert (tmp_path / "first" / "report.md").is_file()
    assert (tmp_path / "first" / "report.png").read_bytes().startswith(PNG_MAGIC)
    stored_report = resources.s3.get_object(Bucket=settings.model_bucket,
                                            Key=f"{settings.model_prefix}/{version}/report.md")
    assert stored_report["Body"].read() == (tmp_path / "first" / "report.md").read_bytes()
    assert registry.read_manifest(version)["metrics"]["candidate"]["ndcg@10"] > 0
    assert "Content insights" not in (tmp_path / "first" / "report.md").read_text()  # none published yet
    InsightsReports(resources.s3, settings.model_bucket, settings.model_prefix).publish(
        "insights-2026-03-02.md", "# Weekly insights\n", "insights-2026-03-02.png", b"png")

    code = retrain_cli.main(["--budget", "1", "--margin", "1", "--report-dir", str(tmp_path / "second")])

    out = capsys.readouterr().out
    assert code == 1, out
    assert "NOT PUBLISHED" in out and "does not beat the live model by 1.0" in out
    assert registry.live_version() == version
    assert len(registry.list_versions()) == 1
    second = (tmp_path / "second" / "report.md").read_text()
    assert "not published" in second
    assert f"the latest weekly report is at `s3://{settings.model_bucket}/insights/latest.md`" in second


def test_cli_reports_an_empty_log_as_an_error(settings, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(retrain_cli, "settings_for_stage", lambda stage: settings)

    assert retrain_cli.main(["--budget", "1", "--report-dir", str(tmp_path)]) == 2
    assert "no usable interaction" in capsys.readouterr().err


def test_cli_reports_an_unreadable_export_as_an_error(settings, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(retrain_cli, "settings_for_stage", lambda stage: settings)

    code = retrain_cli.main(["--from-export", f"s3://{settings.model_bucket}/nothing-here",
                             "--report-dir", str(tmp_path)])

    assert code == 2
    assert "error: no DynamoDB export at s3://" in capsys.readouterr().err


@CPU_HEAVY_GROUP
def test_cli_trains_with_spark_from_a_dynamodb_export(settings, resources, monkeypatch, tmp_path, capsys,
                                                      spark_engine):
    """``--engine spark`` reads the same export, and the same gate publishes the same kind of artifact."""
    monkeypatch.setattr(retrain_cli, "settings_for_stage", lambda stage: settings)
    # --budget 0 fits the engine's defaults: smaller ones keep the test's two Spark fits short.
    monkeypatch.setattr(spark_als, "SPARK_DEFAULTS", SPARK_GOOD)
    items = [event_item(user, item, "click", at) for user, item, at in grouped_events(n_users=40, n_items=30,
                                                                                       per_user=8)]
    write_export(resources.s3, settings.model_bucket, "exports", "01234567890123-abcdefgh", [items[:160], items[160:]])

    code = retrain_cli.main(["--engine", "spark", "--spark-master", "local[2]", "--budget", "0",
                             "--from-export", f"s3://{settings.model_bucket}/exports",
                             "--report-dir", str(tmp_path)])

    out = capsys.readouterr().out
    version = resources.model_registry.live_version()
    assert code == 0, out
    assert f"PUBLISHED {version}:" in out and "engine spark" in out
    manifest = resources.model_registry.read_manifest(version)
    assert manifest["algorithm"] == "spark-als" and manifest["metrics"]["engine"] == "spark"
    assert manifest["counts"]["users"] == 40
    assert "Spark MLlib's ALS" in (tmp_path / "report.md").read_text()
