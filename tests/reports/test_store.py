"""The insights reports' S3 folder on moto: dated files, latest.md written last, and finding it."""

from __future__ import annotations

import pytest

from chalicelib.errors import ConfigError
from chalicelib.reports.store import InsightsReports
from chalicelib.resources import Resources


def test_publish_writes_the_dated_page_and_chart_then_latest(bucket_settings):
    resources = Resources(bucket_settings)
    bucket = resources.settings.model_bucket
    reports = InsightsReports(resources.s3, bucket, resources.settings.model_prefix)
    assert reports.latest_address() is None

    address = reports.publish("insights-2026-03-02.md", "# Weekly insights\n", "insights-2026-03-02.png", b"png")

    assert address == f"s3://{bucket}/insights/insights-2026-03-02.md"
    assert reports.latest_address() == f"s3://{bucket}/insights/latest.md"
    stored = resources.s3.get_object(Bucket=bucket, Key="insights/latest.md")
    assert stored["Body"].read() == b"# Weekly insights\n" and stored["ContentType"].startswith("text/markdown")
    chart = resources.s3.get_object(Bucket=bucket, Key="insights/insights-2026-03-02.png")
    assert chart["ContentType"] == "image/png"
    assert resources.model_registry.list_versions() == []  # beside the model prefix, not in it


@pytest.mark.parametrize("prefix", ["", "/", "insights"])
def test_publishing_among_the_model_versions_is_refused(prefix):
    reports = InsightsReports(None, "bucket", prefix)  # refused before any call

    with pytest.raises(ConfigError, match="among the model versions"):
        reports.publish("a.md", "a", "a.png", b"")
