"""P5: events per second through ``POST /events`` against pynamodb's ``batch_write`` alone.

Run from the project root::

    .venv/bin/python -m benchmarks.ingest            # 20 000 events a side (well under a minute)
    .venv/bin/python -m benchmarks.ingest --quick    # 3 000 events a side

The same events (distinct ids, ~20 users, 5 000 items, ``click``, timestamps
in the last hours) are written twice to the same local DynamoDB (dynalite;
moto where Node.js is missing), each side into its own fresh event table:

* **API**: ``POST /events`` in batches of 100 through ``chalice.test.Client``
  in this process (secret key, so no rate limit; no OpenAPI validation):
  parsing and validation, the duplicate check (BatchGetItem), the writes
  (BatchWriteItem calls of 25 on the log's threads), the erasure check, the
  request's log line and metrics;
* **floor**: the event table's pynamodb model (``Resources.event_table``)
  saving the equivalent records (``EventRecord.of_event``, built beforehand)
  with ``batch_write()``, one context per 100 records, as
  ``scripts/benchmark_events.py`` does.

One untimed batch warms each side (connections, the app's resources). Then
rounds of 10 batches alternate between the sides, the side going first
alternating too, so drift of the server (its tables grow) hits both alike.
"""

from __future__ import annotations

import os

BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
for _variable in BLAS_THREAD_VARIABLES:
    os.environ[_variable] = "1"  # before numpy is imported, or BLAS has already started its threads

import contextlib  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timedelta, timezone  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.answers import CountingSink, settings_for  # noqa: E402
from benchmarks.common import local_stack, standalone  # noqa: E402
from chalicelib.config import Settings  # noqa: E402
from chalicelib.eventlog.item import Event, EventRecord, ensure_table  # noqa: E402
from chalicelib.resources import Resources, reset_app_resources  # noqa: E402
from tests.support import SECRET_KEY, write_stage_config  # noqa: E402

STAGE = "bench"
BATCH = 100
#: Batches a side writes before the other side takes its turn.
ROUND_BATCHES = 10
USERS = [f"user-{number:02d}" for number in range(20)]
ITEMS = 5_000


def bench_settings(s3_url: str, dynamodb_url: str) -> Settings:
    """``benchmarks.answers.settings_for`` (fresh names, the test keys), with AWS timeouts that fit the request's
    deadline: a batch call starts only if its connect + read timeouts still fit, and 5 + 20 s do not fit in 25."""
    return replace(settings_for(s3_url, dynamodb_url), aws_connect_timeout_seconds=2.0, aws_read_timeout_seconds=10.0)


def make_batches(count: int, prefix: str, now: datetime, seed: int) -> list[list[Event]]:
    """*count* events in batches of :data:`BATCH`: distinct ids, random users and items, a second apart."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, len(USERS), count)
    items = rng.integers(0, ITEMS, count)
    events = [Event(USERS[users[n]], f"item-{items[n]:05d}", "click", f"{prefix}-{n:06d}",
                    now - timedelta(seconds=n)) for n in range(count)]
    return [events[start:start + BATCH] for start in range(0, count, BATCH)]


def request_body(events: list[Event]) -> str:
    """``POST /events``'s body for *events*."""
    return json.dumps({"events": [
        {"user_id": event.user_id, "item_id": event.item_id, "event_type": event.event_type,
         "event_id": event.event_id, "timestamp": event.timestamp.isoformat()} for event in events]})


def write_with_batch_write(table: type[EventRecord], records: list[EventRecord]) -> None:
    """The floor: pynamodb's own batch writer (it groups BatchWriteItem calls of 25, retries unprocessed items)."""
    with table.batch_write() as writer:
        for record in records:
            writer.save(record)


def run(quick: bool) -> dict[str, Any]:
    """P5 and its raw figures (the harness's entry point)."""
    from chalice.test import Client

    import app

    count = 3_000 if quick else 20_000
    now = datetime.now(timezone.utc)
    batches = make_batches(count, "ingest", now, seed=5)
    warm_up = make_batches(BATCH, "warm-up", now, seed=6)[0]
    bodies = [request_body(batch) for batch in batches]
    headers = {"Content-Type": "application/json", "x-api-key": SECRET_KEY}

    project = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    sink = CountingSink()
    # S3 is not used by POST /events, but the settings name one.
    with local_stack() as (s3_url, dynamodb_url, engine), contextlib.ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, project, ignore_errors=True)
        cleanup.callback(reset_app_resources)
        api_settings = bench_settings(s3_url, dynamodb_url)
        Resources(api_settings).provision()
        floor_table = Resources(bench_settings(s3_url, dynamodb_url)).event_table
        ensure_table(floor_table)
        received_at = datetime.now(timezone.utc)
        records = [[floor_table.of_event(event, received_at) for event in batch] for batch in batches]

        write_stage_config(project, STAGE, api_settings)
        reset_app_resources()
        http = Client(app.app, stage_name=STAGE, project_dir=str(project)).http

        def post(body: str) -> None:
            response = http.post("/events", body=body, headers=headers)
            if response.status_code != 202 or json.loads(response.body)["accepted"] != BATCH:
                raise RuntimeError(f"POST /events answered {response.status_code}: {response.body[:300]!r}")

        with contextlib.redirect_stdout(sink):  # the metrics blobs (the log lines go to the logger's stream)
            post(request_body(warm_up))
            write_with_batch_write(floor_table, [floor_table.of_event(event, received_at) for event in warm_up])
            api_seconds = floor_seconds = 0.0
            for round_number, start in enumerate(range(0, len(batches), ROUND_BATCHES)):
                chunk = range(start, min(start + ROUND_BATCHES, len(batches)))
                for side in (("api", "floor") if round_number % 2 == 0 else ("floor", "api")):
                    began = time.perf_counter()
                    if side == "api":
                        for index in chunk:
                            post(bodies[index])
                        api_seconds += time.perf_counter() - began
                    else:
                        for index in chunk:
                            write_with_batch_write(floor_table, records[index])
                        floor_seconds += time.perf_counter() - began
    api_rate, floor_rate = count / api_seconds, count / floor_seconds
    return {
        "P5_ingest_vs_batch_write": api_rate / floor_rate,
        "api_events_per_s": api_rate,
        "batch_write_events_per_s": floor_rate,
        "events": count,
        "ingest_dynamodb": engine,
    }


def main(argv: list[str] | None = None) -> int:
    return standalone(run, __doc__, "3 000 events a side", argv)


if __name__ == "__main__":
    raise SystemExit(main())
