"""Cost of the insight counters: POST /events with counters off, at ingest and from the stream, and the stream consumer.

Run from the project root::

    .venv/bin/python -m benchmarks.counters            # 40 requests of each size a side, 5 stream batches
    .venv/bin/python -m benchmarks.counters --quick    # 10 requests, 2 batches

On dynalite (moto where Node.js is missing), each side in its own fresh tables, the MovieLens
catalog's genres in the catalog (1.7 categories an item), one BLAS thread, all in one run:

* **The request path.** Requests of 1 and of 25 events (new ids, 200 users, 1 682 items,
  ``view``/``click``/``purchase``, source ``web``/``app``, timestamps now) through ``record_events``
  (what ``POST /events`` calls after parsing: duplicate check, batch writes, erasure check, then the
  counters at ingest) with ``INSIGHTS_COUNTERS`` ``off``, ``ingest`` and ``stream``; sides alternate
  request by request; p50 and p95. ``stream`` does on the request path what ``off`` does: measured anyway.
* **The stream consumer.** Batches of 100 events replayed from MovieLens-100k: the ratings of its 20
  most rated films in time order, cut into windows of 100 (about 5 users rate each film of a window),
  their timestamps moved onto the last three hours keeping their order, as ``view`` events. Each batch
  is the Lambda-shaped INSERT records of the items the log stores for them (``EventRecord.of_event(...)
  .serialize()``), handed to ``InsightResources.count_stream_batch`` (what the Lambda handler calls); the
  same events also go through ingest in requests of 25, on the ingest side's tables, for comparison.

DynamoDB calls are counted with botocore's ``before-call`` hook on each connection's client, by operation.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import random  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.answers import settings_for  # noqa: E402
from benchmarks.common import local_stack, standalone  # noqa: E402
from chalicelib.api.events import record_events  # noqa: E402
from chalicelib.catalog.formats import import_file as import_catalog  # noqa: E402
from chalicelib.eventlog.item import Event  # noqa: E402
from chalicelib.resources import Resources, _batch_connection  # noqa: E402
from chalicelib.training.sources.movielens import SAMPLE_RATINGS, read_movielens_100k  # noqa: E402
from local_aws.demo import SAMPLE_CATALOG  # noqa: E402

MODES = ("off", "ingest", "stream")
BATCH = 100
#: The films whose ratings are replayed: the most rated, so each batch has several users per item.
REPLAYED_FILMS = 20


def _count_calls(client: Any, calls: Counter) -> None:
    client.meta.events.register("before-call.dynamodb.*",
                                lambda model, **kwargs: calls.update([model.name]))


def replay_batches(count: int, now: datetime) -> list[list[Event]]:
    """*count* batches of 100 MovieLens ratings of its most rated films, moved onto the last three hours."""
    ratings = read_movielens_100k(SAMPLE_RATINGS)
    films, seen = np.unique(ratings.item_ids, return_counts=True)
    kept = np.isin(ratings.item_ids, films[np.argsort(-seen, kind="stable")[:REPLAYED_FILMS]])
    order = np.argsort(ratings.timestamps[kept], kind="stable")
    users, items, stamps = (ratings.user_ids[kept][order], ratings.item_ids[kept][order],
                            ratings.timestamps[kept][order].astype(float))
    batches = []
    for number in range(count):
        window = slice(number * BATCH, (number + 1) * BATCH)
        span = max(stamps[window][-1] - stamps[window][0], 1.0)
        start = now - timedelta(hours=3)
        batches.append([Event(str(user), str(item), "view", f"replay-{number}-{k}",
                              start + timedelta(hours=3 * (stamp - stamps[window][0]) / span), source="web")
                        for k, (user, item, stamp) in enumerate(zip(users[window], items[window], stamps[window]))])
    return batches


def stream_records(resources: Resources, events: list[Event]) -> list[dict[str, Any]]:
    """The INSERT records the events table's stream delivers for *events* (NEW_IMAGE), Lambda-shaped."""
    received = datetime.now(timezone.utc)
    return [{"eventName": "INSERT", "eventSource": "aws:dynamodb", "awsRegion": "us-east-1",
             "dynamodb": {"NewImage": resources.event_table.of_event(event, received).serialize(),
                          "StreamViewType": "NEW_IMAGE", "SequenceNumber": str(k), "SizeBytes": 200,
                          "ApproximateCreationDateTime": received.timestamp()}}
            for k, event in enumerate(events)]


def run(quick: bool) -> dict[str, Any]:
    requests = 10 if quick else 40
    batches = 2 if quick else 5
    rng = random.Random(7)
    figures: dict[str, Any] = {"requests_per_size": requests, "stream_batches": batches, "batch_size": BATCH}
    with local_stack() as (s3_url, dynamodb_url, engine):
        figures["dynamodb"] = engine
        sides = {}
        for mode in MODES:
            resources = Resources(replace(settings_for(s3_url, dynamodb_url), insights_counters=mode))
            resources.provision()
            import_catalog(SAMPLE_CATALOG, "movielens-100k", resources.catalog)
            calls: Counter = Counter()
            _count_calls(_batch_connection(resources.event_table).connection.client, calls)
            _count_calls(resources.insights.counters._table.connection.client, calls)
            resources.insights.item_categories([str(n) for n in range(1, 1683)])  # a warm instance's catalog cache
            sides[mode] = (resources, calls)
        for size in (1, 25):
            times: dict[str, list[float]] = {mode: [] for mode in sides}
            counted = {mode: Counter() for mode in sides}
            for number in range(requests + 1):
                for mode, (resources, calls) in sides.items():
                    events = [Event(f"user-{rng.randrange(200)}", str(rng.randrange(1, 1683)),
                                    rng.choice(["view", "view", "click", "purchase"]), f"{size}-{number}-{k}",
                                    datetime.now(timezone.utc), source=rng.choice(["web", "app"]))
                              for k in range(size)]
                    before = Counter(calls)
                    started = time.perf_counter()
                    record_events(resources.event_log, events, resources.request_deadline())
                    if number:  # the first request of each side warms its connections
                        times[mode].append(time.perf_counter() - started)
                        counted[mode] += calls - before
            for mode in sides:
                per_event = {op: round(n / (requests * size), 2) for op, n in sorted(counted[mode].items())}
                figures[f"{mode}_{size}"] = {"p50_ms": round(1000 * float(np.median(times[mode])), 1),
                                             "p95_ms": round(1000 * float(np.percentile(times[mode], 95)), 1),
                                             "calls_per_event": per_event}
            for mode in ("ingest", "stream"):
                figures[f"latency_ratio_{mode}_{size}"] = round(figures[f"{mode}_{size}"]["p50_ms"]
                                                                / figures[f"off_{size}"]["p50_ms"], 2)
        figures["stream_consumer"] = _consumer(sides, replay_batches(batches, datetime.now(timezone.utc)))
    return figures


def _consumer(sides: dict[str, tuple[Resources, Counter]], batches: list[list[Event]]) -> dict[str, Any]:
    """The stream consumer on each replayed batch, and the same events at ingest in requests of 25."""
    stream, stream_calls = sides["stream"]
    ingest, ingest_calls = sides["ingest"]
    times, counted, ingested, items = [], Counter(), Counter(), []
    for events in batches:
        records = stream_records(stream, events)
        before = Counter(stream_calls)
        started = time.perf_counter()
        answer = stream.insights.count_stream_batch(records)
        times.append(time.perf_counter() - started)
        counted += stream_calls - before
        items.append(answer.counter_items)
        before = Counter(ingest_calls)
        for start in range(0, len(events), 25):
            record_events(ingest.event_log, events[start:start + 25], ingest.request_deadline())
        ingested += ingest_calls - before
    total = BATCH * len(batches)
    return {"handler_ms_per_batch_p50": round(1000 * float(np.median(times)), 1),
            "handler_ms_per_batch_max": round(1000 * float(np.max(times)), 1),
            "counter_items_per_batch": round(float(np.mean(items)), 1),
            "users_per_item_per_batch": round(float(np.mean([
                np.mean(list(Counter(e.item_id for e in {(e.user_id, e.item_id): e for e in events}.values())
                             .values())) for events in batches])), 1),
            "stream_calls_per_event": {op: round(n / total, 2) for op, n in sorted(counted.items())},
            "ingest_25_calls_per_event": {op: round(n / total, 2) for op, n in sorted(ingested.items())
                                          if op in ("UpdateItem", "GetItem")}}


if __name__ == "__main__":
    raise SystemExit(standalone(run, __doc__, "10 requests of each size a side, 2 stream batches"))
