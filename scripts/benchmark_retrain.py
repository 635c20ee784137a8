"""Wall time per phase and peak memory of the retrain pipeline at scale.

  python scripts/benchmark_retrain.py --synthetic 10000000     # in-memory events, all phases but the scan
  python scripts/benchmark_retrain.py --dynamodb 1000000       # events loaded into dynalite, full pipeline

Synthetic events follow a power law over items and users. With --dynamodb the
events are first written to a dynalite table (not timed), then the retrain
reads them with a parallel Scan. Everything runs on 127.0.0.1 servers this
script starts; nothing is published anywhere else.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import numpy as np


def synthetic_events(n_events: int, n_users: int, n_items: int, seed: int):
    """Power-law events: a few users and items account for most interactions."""
    from chalicelib.training.event_arrays import EventArrays

    rng = np.random.default_rng(seed)
    # Activity varies by user (lognormal); items follow a long tail inside each user's taste group.
    activity = rng.lognormal(0, 1, n_users)
    users = rng.choice(n_users, n_events, p=activity / activity.sum()).astype(np.int32)
    group_size = n_items // 20
    tail = 1.0 / np.arange(10, group_size + 10) ** 0.8
    items = ((users % 20) * group_size + rng.choice(group_size, n_events, p=tail / tail.sum())).astype(np.int32)
    noise = rng.random(n_events) < 0.3
    items[noise] = rng.integers(0, n_items, int(noise.sum()), dtype=np.int32)
    start = np.datetime64("2026-01-01T00:00:00", "ms")
    times = start + rng.integers(0, 180 * 86_400_000, n_events).astype("timedelta64[ms]")
    types = rng.choice(np.array([0, 1, 2], dtype=np.int16), n_events, p=[0.7, 0.2, 0.1])
    return EventArrays(
        users=users, items=items, types=types, times=times,
        user_ids=np.array([f"user-{u}" for u in range(n_users)]),
        item_ids=np.array([f"item-{i}" for i in range(n_items)]),
        event_types=np.array(["view", "click", "purchase"]),
    )


def load_into_table(events, model, threads: int = 4) -> float:
    """Write *events* into the table with pynamodb batch writes; returns seconds."""
    from chalicelib.eventlog.item import Event

    def write(chunk: range) -> None:
        with model.batch_write() as batch:
            for i in chunk:
                moment = events.times[i].astype(datetime).replace(tzinfo=timezone.utc)
                event = Event(user_id=str(events.user_ids[events.users[i]]), item_id=str(events.item_ids[events.items[i]]),
                              event_type=str(events.event_types[events.types[i]]), event_id=f"b{i}", timestamp=moment)
                batch.save(model.of_event(event, received_at=moment + timedelta(days=1)))

    started = time.perf_counter()
    step = 5000
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, [range(s, min(s + step, len(events))) for s in range(0, len(events), step)]))
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--synthetic", type=int, metavar="N", help="N events held in memory")
    source.add_argument("--dynamodb", type=int, metavar="N", help="N events written to dynalite first")
    parser.add_argument("--users", type=int, help="distinct users (default N / 50)")
    parser.add_argument("--items", type=int, help="distinct items (default N / 250, at least 2000)")
    parser.add_argument("--budget", type=int, default=2, help="search trials (default 2)")
    parser.add_argument("--factors", type=int, default=32)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--segments", type=int, default=4)
    args = parser.parse_args(argv)

    from chalicelib.config import DEFAULT_EVENT_WEIGHTS, load_settings
    from chalicelib.resources import Resources
    from chalicelib.training.als import AlsParameters
    from chalicelib.training.event_arrays import EventLogSnapshot
    from chalicelib.training.retrain import PHASES, Progress, RetrainOptions, retrain
    from chalicelib.training.search import SearchSpace
    from chalicelib.training.sources.scan import read_event_log
    from local_aws.stack import FAKE_CREDENTIALS, DynaliteServer, MotoServer

    n_events = args.synthetic or args.dynamodb
    n_users = args.users or max(n_events // 50, 100)
    n_items = args.items or max(n_events // 250, 2000)
    os.environ.update(FAKE_CREDENTIALS)
    moto = MotoServer().start()
    dynalite = DynaliteServer().start() if args.dynamodb else None
    try:
        settings = load_settings({
            "MODEL_BUCKET": "bench-retrain", "EVENTS_TABLE": "bench-retrain-events", "S3_ENDPOINT_URL": moto.url,
            "DYNAMODB_ENDPOINT_URL": (dynalite or moto).url,
        })
        resources = Resources(settings)
        resources.provision()
        events = synthetic_events(n_events, n_users, n_items, seed=1)
        print(f"{n_events:,} events, {n_users:,} users, {n_items:,} items; budget {args.budget}, "
              f"{args.factors} factors, {args.iterations} iterations", flush=True)
        if args.dynamodb:
            model = resources.scan_table
            print(f"loaded into dynalite in {load_into_table(events, model):.0f} s (not part of the retrain)", flush=True)
            del events

            def read(progress):
                return read_event_log(model, progress, segments=args.segments)
        else:
            snapshot = EventLogSnapshot(events=events, erased={}, scanned_at=datetime.now(timezone.utc))

            def read(progress):
                return snapshot

        class Printer(Progress):
            def done(self, name: str, seconds: float) -> None:
                rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                print(f"  {name:8s} {seconds:7.1f} s   peak RSS so far {rss:,.0f} MB", flush=True)

        start = AlsParameters(factors=args.factors, iterations=args.iterations, regularization=0.05, alpha=2.0)
        space = SearchSpace(factors=(args.factors,), iterations=(args.iterations,))
        options = RetrainOptions(budget=args.budget, start=start, space=space, keep_versions=2)
        started = time.perf_counter()
        result = retrain(read, resources.model_registry, DEFAULT_EVENT_WEIGHTS, options, Printer())
        total = time.perf_counter() - started
        print(f"interactions {result.counts['interactions']:,}, evaluated users {result.counts['evaluated_users']:,}")
        print("phases: " + ", ".join(f"{p} {result.timings[p]:.1f} s" for p in PHASES if p in result.timings)
              + f"; total {total:.1f} s")
        target = result.target
        print(f"{target}: candidate {result.metrics['candidate'][target]:.4f}, "
              f"popularity {result.metrics['popularity'][target]:.4f}; published: {result.published}")
    finally:
        if dynalite:
            dynalite.stop()
        moto.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
