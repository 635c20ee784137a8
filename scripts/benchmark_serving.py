"""Latency of the API in-process (chalice.test.Client) on the demo model, model alone.

Starts its own moto S3 on a free 127.0.0.1 port, publishes the demo model
(ALS on the bundled MovieLens-100k sample), then times each route and prints
p50 / p95 / p99 in milliseconds. Nothing leaves this machine.

  --caller secret    a server with the secret key (default)
  --caller visitor   a page with the publishable key, its Origin and, for a
                     user's recommendations, that user's token (verified per request)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def percentiles(samples_ms: list[float]) -> str:
    p50, p95, p99 = np.percentile(samples_ms, [50, 95, 99])
    return f"p50 {p50:6.2f} ms   p95 {p95:6.2f} ms   p99 {p99:6.2f} ms   mean {statistics.fmean(samples_ms):6.2f} ms"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000, help="requests per route (default 2000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--caller", choices=("secret", "visitor"), default="secret",
                        help="who calls: a server with the secret key, or a page with a publishable key and tokens")
    args = parser.parse_args(argv)

    from chalice.test import Client

    import app
    from chalicelib.access.keys import hash_key, new_key
    from chalicelib.access.tokens import make_user_token
    from chalicelib.config import PUBLISHABLE, SECRET, ApiKeyConfig, Settings, SigningSecretConfig, environment_of
    from chalicelib.resources import Resources, reset_app_resources
    from chalicelib.training.train import train_sample_model
    from local_aws.stack import FAKE_CREDENTIALS, MotoServer

    os.environ.update(FAKE_CREDENTIALS)
    moto = MotoServer().start()
    try:
        # The model alone (REALTIME_EVENTS=0): scripts/benchmark_events.py measures what the
        # event-log Query of real-time personalisation adds.
        origin, secret_key, publishable_key = "https://bench.example", new_key(SECRET), new_key(PUBLISHABLE)
        signing_secret = new_key(SECRET)  # as random as a key, and long enough
        settings = Settings(
            "bench-models", "models", "bench-events", "us-east-1", moto.url, moto.url, 60.0, "WARNING",
            realtime_events=0,
            publishable_keys=(ApiKeyConfig("bench-web", PUBLISHABLE, hash_key(publishable_key), frozenset({origin})),),
            secret_keys=(ApiKeyConfig("bench-server", SECRET, hash_key(secret_key)),),
            user_token_secrets=(SigningSecretConfig("bench", value=signing_secret),),
        )
        resources = Resources(settings)
        resources.provision()
        artifact = train_sample_model()
        version = resources.model_registry.publish(artifact)
        users = artifact.user_ids.tolist()
        items = artifact.item_ids.tolist()
        rng = np.random.default_rng(args.seed)
        tokens = {user: make_user_token(user, signing_secret, "bench", 86400) for user in users}

        def headers(user: str | None = None) -> dict[str, str]:
            if args.caller == "secret":
                return {"x-api-key": secret_key, "Content-Type": "application/json"}
            visitor = {"x-api-key": publishable_key, "origin": origin, "Content-Type": "application/json"}
            return {**visitor, "x-user-token": tokens[user]} if user is not None else visitor

        with tempfile.TemporaryDirectory() as project_dir:
            env = environment_of(settings)
            (Path(project_dir) / ".chalice").mkdir()
            (Path(project_dir) / ".chalice" / "config.json").write_text(
                json.dumps({"version": "2.0", "app_name": "bench", "stages": {"bench": {"environment_variables": env}}})
            )
            reset_app_resources()
            with Client(app.app, stage_name="bench", project_dir=project_dir) as client:
                started = time.perf_counter()
                first = client.http.get("/health", headers=headers())
                load_ms = (time.perf_counter() - started) * 1000
                assert first.status_code == 200, first.body
                print(f"model {version}: {artifact.n_users} users x {artifact.n_items} items, "
                      f"{artifact.n_factors} factors; first request (loads the model from S3): {load_ms:.0f} ms")

                def timed(make_request) -> list[float]:
                    samples = []
                    for _ in range(args.requests):
                        started = time.perf_counter()
                        response = make_request()
                        samples.append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200, response.body
                    return samples

                def user_recommendations():
                    user = users[rng.integers(len(users))]
                    return client.http.get(f"/users/{user}/recommendations?n=10", headers=headers(user))

                routes = {
                    "GET /users/{id}/recommendations": user_recommendations,
                    "GET /items/{id}/similar": lambda: client.http.get(
                        f"/items/{items[rng.integers(len(items))]}/similar?n=10", headers=headers()),
                    "GET /popular": lambda: client.http.get("/popular?n=10", headers=headers()),
                    "POST /recommendations (5 items)": lambda: client.http.post(
                        "/recommendations", headers=headers(),
                        body=json.dumps({"item_ids": rng.choice(items, 5).tolist(), "n": 10})),
                }
                print(f"{args.requests} requests per route as a {args.caller} caller, in-process through "
                      "chalice.test.Client:")
                for name, make_request in routes.items():
                    print(f"  {name:34s} {percentiles(timed(make_request))}")
    finally:
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
