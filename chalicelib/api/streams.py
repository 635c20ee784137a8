"""The insight counters' stream consumer: the events table's DynamoDB stream, a batch at a time.

With ``INSIGHTS_COUNTERS=stream`` (deployed stages) ``POST /events`` and imports only store events;
this Lambda function reads what the table stored from its stream and keeps the counters
(chalicelib/insights/stream.py does the work). It has a role of its own, which may read the stream
and update the counters and nothing the API does (``.chalice/config.json``,
``lambda_functions.insight_counters``).

Chalice evaluates the decorator when it loads ``app.py`` (``chalice package`` does, with the stage's
variables only), so the stream ARN comes from :func:`chalicelib.config.events_stream_arn`, a
stand-in unless ``EVENTS_STREAM_ARN`` is set; ``.chalice/template.json`` gives the event source the
stack's own stream, with the retry settings chalice cannot express. ``chalice local`` runs no event
source, and dynalite has no streams: the local stage counts at ingest.
"""

from __future__ import annotations

from typing import Any

from chalice import Blueprint
from chalice.app import DynamoDBEvent

from chalicelib.config import events_stream_arn
from chalicelib.resources import app_resources

#: Records per invocation: up to 100 events tallied together, so a counter item touched by several
#: of them costs one update (benchmarks/counters.py measures it).
BATCH_SIZE = 100
#: Lambda waits up to this long to fill a batch: counters lag by seconds, which hour buckets never show.
BATCHING_WINDOW_SECONDS = 5

blueprint = Blueprint(__name__)


# LATEST, not TRIM_HORIZON: a new (or re-created) event source mapping would otherwise replay up to
# 24 hours of the stream into counters that already hold it, doubling a day of counts; LATEST misses
# only what was written between the stream's creation and the mapping's, which the rebuild repairs
# (README, Insights: deploy).
@blueprint.on_dynamodb_record(stream_arn=events_stream_arn(), batch_size=BATCH_SIZE, starting_position="LATEST",
                              name="insight_counters", maximum_batching_window_in_seconds=BATCHING_WINDOW_SECONDS)
def insight_counters(event: DynamoDBEvent) -> dict[str, Any]:
    """Add the batch's new events to the insight counters; raises (Lambda retries) when some were not."""
    counted = app_resources().insights.count_stream_batch(event.to_dict()["Records"])
    return counted.as_json() if counted is not None else {"skipped": "INSIGHTS_COUNTERS is not stream"}
