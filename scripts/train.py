"""Train an ALS model and publish it to the stage's S3 bucket.

By default it trains on every event of the stage's DynamoDB event log (erased
users left out), as in production; --ratings trains on a MovieLens-100k file.
With `make demo` running, `python scripts/train.py` publishes to the demo's
local S3 and the API switches to the new version within MODEL_REFRESH_SECONDS.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from chalicelib.config import settings_for_stage
from chalicelib.errors import RecommenderError
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.resources import Resources
from chalicelib.training.als import AlsParameters
from chalicelib.training.sources.movielens import read_movielens_100k
from chalicelib.training.train import train_from_event_log, train_from_ratings


def main(argv: list[str] | None = None) -> int:
    defaults = AlsParameters()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", default="local", help="chalice stage to read events from and publish to (default: local, the demo)")
    parser.add_argument("--ratings", type=Path, help="train on this MovieLens-100k u.data file instead of the event log")
    parser.add_argument("--factors", type=int, default=defaults.factors)
    parser.add_argument("--regularization", type=float, default=defaults.regularization)
    parser.add_argument("--alpha", type=float, default=defaults.alpha)
    parser.add_argument("--iterations", type=int, default=defaults.iterations)
    parser.add_argument("--seed", type=int, default=defaults.random_state)
    parser.add_argument("--activity-exponent", type=float, default=defaults.activity_exponent,
                        help=f"beta: each user's interactions weigh (count / mean count)^-beta "
                             f"(default {defaults.activity_exponent}; 0 weighs all users alike)")
    parser.add_argument("--no-publish", action="store_true", help="train only; do not upload")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    params = AlsParameters(args.factors, args.regularization, args.alpha, args.iterations, args.seed,
                           args.activity_exponent)
    started = time.perf_counter()
    try:
        settings = settings_for_stage(args.stage)
        resources = Resources(settings)
        if args.ratings:
            artifact = train_from_ratings(read_movielens_100k(args.ratings), params)
        else:
            with tqdm(unit="event", desc=f"scanning {settings.events_table}") as bar:
                artifact = train_from_event_log(resources.scan_table, EventWeighting.from_settings(settings), params,
                                                progress=bar.update)
        print(f"trained {artifact.algorithm} on {artifact.n_interactions} interactions "
              f"({artifact.n_users} users x {artifact.n_items} items) in {time.perf_counter() - started:.1f} s; "
              f"training cutoff {artifact.training_cutoff}")
        if args.no_publish:
            return 0
        version = resources.model_registry.publish(artifact)
    except RecommenderError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"published version {version} to s3://{settings.model_bucket}/{settings.model_prefix}/{version}/ and made it live")
    return 0


if __name__ == "__main__":
    sys.exit(main())
