"""Cost of the insight counters at ingest: the POST /events path with counters on and off, same run.

Run from the project root::

    .venv/bin/python -m benchmarks.counters            # 40 requests of each size a side
    .venv/bin/python -m benchmarks.counters --quick    # 10

On dynalite (moto where Node.js is missing), each side in its own fresh tables, the MovieLens
catalog's genres in the catalog (1.7 categories an item): requests of 1 and of 25 events (new ids,
200 users, 1 682 items, ``view``/``click``/``purchase``, source ``web``/``app``, timestamps now)
through ``record_events`` (what ``POST /events`` calls after parsing: duplicate check, batch writes,
erasure check, then the counters). Sides alternate request by request. DynamoDB calls are counted
with botocore's ``before-call`` hook on each connection's client, by operation. One BLAS thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import random  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from dataclasses import replace  # noqa: E402
from datetime import datetime, timezone  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.answers import settings_for  # noqa: E402
from benchmarks.common import local_stack, standalone  # noqa: E402
from chalicelib.api.events import record_events  # noqa: E402
from chalicelib.catalog.formats import import_file as import_catalog  # noqa: E402
from chalicelib.eventlog.item import Event  # noqa: E402
from chalicelib.resources import Resources, _batch_connection  # noqa: E402
from local_aws.demo import SAMPLE_CATALOG  # noqa: E402


def _count_calls(client: Any, calls: Counter) -> None:
    client.meta.events.register("before-call.dynamodb.*",
                                lambda model, **kwargs: calls.update([model.name]))


def run(quick: bool) -> dict[str, Any]:
    requests = 10 if quick else 40
    rng = random.Random(7)
    figures: dict[str, Any] = {"requests_per_size": requests}
    with local_stack() as (s3_url, dynamodb_url, engine):
        figures["dynamodb"] = engine
        sides = {}
        for name, on in (("counters_on", True), ("counters_off", False)):
            resources = Resources(replace(settings_for(s3_url, dynamodb_url), insights_counters=on))
            resources.provision()
            import_catalog(SAMPLE_CATALOG, "movielens-100k", resources.catalog)
            calls: Counter = Counter()
            _count_calls(_batch_connection(resources.event_table).connection.client, calls)
            _count_calls(resources.insight_counters._table.connection.client, calls)
            resources.item_categories([str(n) for n in range(1, 1683)])  # a warm instance's catalog cache
            sides[name] = (resources, calls)
        for size in (1, 25):
            times: dict[str, list[float]] = {name: [] for name in sides}
            counted = {name: Counter() for name in sides}
            for number in range(requests + 1):
                for name, (resources, calls) in sides.items():
                    events = [Event(f"user-{rng.randrange(200)}", str(rng.randrange(1, 1683)),
                                    rng.choice(["view", "view", "click", "purchase"]), f"{size}-{number}-{k}",
                                    datetime.now(timezone.utc), source=rng.choice(["web", "app"]))
                              for k in range(size)]
                    before = Counter(calls)
                    started = time.perf_counter()
                    record_events(resources.event_log, events, resources.request_deadline())
                    if number:  # the first request of each side warms its connections
                        times[name].append(time.perf_counter() - started)
                        counted[name] += calls - before
            for name in sides:
                per_event = {op: round(n / (requests * size), 2) for op, n in sorted(counted[name].items())}
                figures[f"{name}_{size}"] = {"p50_ms": round(1000 * float(np.median(times[name])), 1),
                                             "mean_ms": round(1000 * float(np.mean(times[name])), 1),
                                             "calls_per_event": per_event}
            figures[f"latency_ratio_{size}"] = round(figures[f"counters_on_{size}"]["p50_ms"]
                                                     / figures[f"counters_off_{size}"]["p50_ms"], 2)
    return figures


if __name__ == "__main__":
    raise SystemExit(standalone(run, __doc__, "10 requests of each size a side"))
