"""The Lambda's scheduled entry point: the daily retraining (chalicelib/jobs/retrain.py does the work).

EventBridge calls it every day at 03:00 UTC; with no ``RETRAIN_JOB``
configured it does nothing. Its Lambda function has a role of its own, which
may start that one job and nothing the API does (``.chalice/config.json``,
``lambda_functions.daily_retrain``).
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint, Cron

from chalicelib.jobs.retrain import start_scheduled_retrain
from chalicelib.resources import app_resources

#: 03:00 UTC every day: after the day's traffic in most of Europe and the Americas.
DAILY_AT_3 = Cron(0, 3, "*", "*", "?", "*")

blueprint = Blueprint(__name__)


@blueprint.schedule(DAILY_AT_3, name="daily_retrain")
def daily_retrain(event: Any) -> dict[str, Any]:
    """Start the day's retraining job."""
    return start_scheduled_retrain(app_resources().retrain_job)
