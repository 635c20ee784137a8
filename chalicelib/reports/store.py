"""The weekly insights reports in S3: ``insights/`` in the model bucket, beside the model prefix.

Each week's page and chart keep their dated names (``insights-YYYY-MM-DD.md``
and ``.png``); ``latest.md`` is a copy of the newest page, written last, so a
fixed address (the retrain's report links it) always shows the latest week.
The page names its chart relatively, so both copies find the dated PNG.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.errors import ConfigError
from chalicelib.exports import ExportFolder

logger = logging.getLogger(__name__)

INSIGHTS_PREFIX = "insights"
LATEST_PAGE = "latest.md"


class InsightsReports:
    """Publishes the weekly pages into ``s3://bucket/insights/`` and finds the latest one.

    Parameters
    ----------
    s3_client: a boto3 S3 client.
    bucket: the model bucket.
    model_prefix: the models' prefix, which ``insights/`` must not be inside (a version listing would show it).
    """

    def __init__(self, s3_client: Any, bucket: str, model_prefix: str) -> None:
        self._s3 = s3_client
        self._bucket = bucket
        self._model_prefix = model_prefix.strip("/")
        self._folder = ExportFolder(s3_client, bucket, INSIGHTS_PREFIX)

    @property
    def latest_key(self) -> str:
        """The S3 key of the newest page's copy."""
        return self._folder.key(LATEST_PAGE)

    def publish(self, page_name: str, page: str, chart_name: str, chart: bytes) -> str:
        """Upload the chart, the page, then the page again as ``latest.md``; returns the page's ``s3://`` address.

        Raises
        ------
        ConfigError
            When the model prefix is empty or ``insights``: the folder would sit among the model versions.
        """
        if self._model_prefix in ("", INSIGHTS_PREFIX):
            raise ConfigError(f"MODEL_PREFIX is {self._model_prefix!r}: the insights reports would go among the model "
                              f"versions in s3://{self._bucket}/{INSIGHTS_PREFIX}/; set another MODEL_PREFIX")
        body = page.encode("utf-8")
        self._folder.put(chart_name, chart, "image/png")
        address = self._folder.put(page_name, body, "text/markdown; charset=utf-8")
        self._folder.put(LATEST_PAGE, body, "text/markdown; charset=utf-8")
        logger.info("published the insights report %s", address)
        return address

    def latest_address(self) -> str | None:
        """The ``s3://`` address of ``latest.md``; None when none was published or it cannot be read.

        A missing read permission (403: S3 answers it for a missing key too when
        listing is not allowed) counts as none: the link is a convenience, and
        the caller's own work goes on without it.
        """
        try:
            self._s3.head_object(Bucket=self._bucket, Key=self.latest_key)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code not in ("404", "NoSuchKey", "NotFound"):
                logger.warning("cannot tell whether s3://%s/%s exists (%s): not linked", self._bucket,
                               self.latest_key, code)
            return None
        return f"s3://{self._bucket}/{self.latest_key}"
