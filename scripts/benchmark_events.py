"""Event log throughput and real-time latency on the local stack (dynalite, or moto without Node.js).

Prints:

* events/s through ``POST /events`` (batches of 100, in-process chalice.test.Client),
  versus pynamodb's own ``batch_write`` on the same table and server;
* p50/p95 of ``GET /users/{id}/recommendations`` with real-time personalisation
  (one DynamoDB Query per request) and model-only (``REALTIME_EVENTS=0``).

Everything runs on 127.0.0.1 servers this script starts and stops.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events written by each method (default 20000)")
    parser.add_argument("--requests", type=int, default=1000, help="recommendation requests per mode (default 1000)")
    args = parser.parse_args(argv)

    from chalice.test import Client

    import app
    from chalicelib.access.keys import hash_key, new_key
    from chalicelib.config import SECRET, environment_of, load_settings
    from chalicelib.eventlog.item import Event, EventRecord
    from chalicelib.resources import Resources, reset_app_resources
    from chalicelib.training.train import train_sample_model
    from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer, dynalite_unavailable_reason

    os.environ.update(FAKE_CREDENTIALS)
    moto = MotoServer().start()
    reason = dynalite_unavailable_reason()
    dynamodb = DynaliteServer().start() if reason is None else moto
    engine = "dynalite" if reason is None else f"moto ({reason})"
    try:
        secret_key = new_key(SECRET)
        base = load_settings({
            "MODEL_BUCKET": "bench-models", "EVENTS_TABLE": "bench-events-api", "S3_ENDPOINT_URL": moto.url,
            "DYNAMODB_ENDPOINT_URL": dynamodb.url, "LOG_LEVEL": "WARNING", "MODEL_REFRESH_SECONDS": "600",
            "SECRET_KEYS": json.dumps([{"id": "bench", "sha256": hash_key(secret_key)}]),
        })
        key_header = {"x-api-key": secret_key}
        Resources(base).provision()
        artifact = train_sample_model()
        Resources(base).model_registry.publish(artifact)
        users = artifact.user_ids.tolist()
        items = artifact.item_ids.tolist()
        rng = np.random.default_rng(3)
        now = datetime.now(timezone.utc)

        def batch(offset: int) -> list[dict]:
            return [
                {"user_id": users[rng.integers(len(users))], "item_id": items[rng.integers(len(items))],
                 "event_type": "click", "event_id": f"bench-{offset + i}",
                 "timestamp": (now - timedelta(seconds=offset + i)).isoformat()}
                for i in range(100)
            ]

        print(f"DynamoDB: {engine}; {args.events} events per method, batches of 100")
        with tempfile.TemporaryDirectory() as project_dir:
            def client_for(settings):
                (Path(project_dir) / ".chalice").mkdir(exist_ok=True)
                (Path(project_dir) / ".chalice" / "config.json").write_text(json.dumps(
                    {"version": "2.0", "app_name": "bench",
                     "stages": {"bench": {"environment_variables": environment_of(settings)}}}))
                reset_app_resources()
                return Client(app.app, stage_name="bench", project_dir=project_dir)

            with client_for(base) as client:
                bodies = [json.dumps({"events": batch(offset)}) for offset in range(0, args.events, 100)]
                started = time.perf_counter()
                for body in bodies:
                    response = client.http.post("/events", body=body,
                                                headers={"Content-Type": "application/json", **key_header})
                    assert response.status_code == 202, response.body
                api_rate = args.events / (time.perf_counter() - started)

            raw_resources = Resources(replace(base, events_table="bench-events-raw"))
            raw_resources.provision()
            raw: type[EventRecord] = raw_resources.event_table
            received_at = datetime.now(timezone.utc)
            records = [
                raw.of_event(Event(event["user_id"], event["item_id"], "click", event["event_id"],
                                   datetime.fromisoformat(event["timestamp"])), received_at)
                for offset in range(0, args.events, 100) for event in batch(offset)
            ]
            started = time.perf_counter()
            for start in range(0, len(records), 100):
                with raw.batch_write() as writer:
                    for record in records[start:start + 100]:
                        writer.save(record)
            raw_rate = args.events / (time.perf_counter() - started)
            print(f"  POST /events (validation, duplicate check, retries): {api_rate:8.0f} events/s")
            print(f"  pynamodb batch_write alone:                          {raw_rate:8.0f} events/s")

            timings = {}
            for mode, settings in (("real-time (Query of 50 latest events)", base),
                                   ("model only (REALTIME_EVENTS=0)", replace(base, realtime_events=0))):
                with client_for(settings) as client:
                    client.http.get(f"/users/{users[0]}/recommendations", headers=key_header)  # load the model
                    samples = []
                    for _ in range(args.requests):
                        user = users[rng.integers(len(users))]
                        started = time.perf_counter()
                        response = client.http.get(f"/users/{user}/recommendations?n=10", headers=key_header)
                        samples.append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200, response.body
                    timings[mode] = samples
            print(f"GET /users/{{id}}/recommendations, {args.requests} requests, users with ~{args.events // len(users)} "
                  "new events each:")
            for mode, samples in timings.items():
                p50, p95 = np.percentile(samples, [50, 95])
                print(f"  {mode:40s} p50 {p50:6.2f} ms   p95 {p95:6.2f} ms")
            extra = np.percentile(list(timings.values())[0], 50) - np.percentile(list(timings.values())[1], 50)
            print(f"  extra p50 latency of real-time: {extra:.2f} ms")
    finally:
        if dynamodb is not moto:
            dynamodb.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
