"""implicit against Spark MLlib on the MovieLens-100k protocol: nDCG@10 and wall time (not part of ``make bench``).

Run from the project root::

    .venv/bin/python -m benchmarks.engines            # split seeds 1 and 2 (about 30 minutes, most of it Spark)
    .venv/bin/python -m benchmarks.engines --quick    # seed 1, 4 trials

Both engines are tuned the same way, by the same code: the protocol's split
(stratified 75/25, per seed), then a random search of ``BUDGET`` trials over a
grid of 60 configurations (factors 64 or 128, six alphas, five regularisations
per alpha, 15 iterations) on two validation folds carved from the training part,
the best by validation nDCG@10 refitted on the training part and scored once on
test. The grids differ only in λ's units: implicit's λ is one number for every
user and item, Spark's is multiplied by each one's count of interactions, so
its values are about a hundredth (``SPARK_SEARCH_SPACE``).

Wall time is the whole procedure per seed (41 fits). Both engines use the two
cores: implicit its own threads (BLAS one thread), Spark ``local[2]``.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # before numpy is imported

import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, replace  # noqa: E402
from typing import Any  # noqa: E402

from benchmarks.common import standalone  # noqa: E402
from chalicelib.eventlog.weighting import EventWeighting  # noqa: E402
from chalicelib.training.engine import IMPLICIT, TrainingEngine  # noqa: E402
from chalicelib.training.event_arrays import EventArrays, EventLogSnapshot  # noqa: E402
from chalicelib.training.interactions import InteractionTable, interaction_table  # noqa: E402
from chalicelib.training.metrics import evaluate_ranking  # noqa: E402
from chalicelib.training.search import random_search  # noqa: E402
from chalicelib.training.sources.movielens import SAMPLE_RATINGS, read_movielens_100k  # noqa: E402
from chalicelib.training.splits import stratified_split  # noqa: E402

SEEDS = (1, 2)
BUDGET = 20
FOLDS = 2


def movielens_table() -> InteractionTable:
    """Every MovieLens-100k rating as one interaction of weight 1 (the protocol)."""
    ratings = read_movielens_100k(SAMPLE_RATINGS)
    events = EventArrays.from_strings(ratings.user_ids, ratings.item_ids, ["rating"] * len(ratings.user_ids),
                                      ratings.timestamps.astype("datetime64[s]"))
    return interaction_table(EventLogSnapshot(events=events, erased={}), EventWeighting({"rating": 1.0}))


def tune_and_test(engine: TrainingEngine, table: InteractionTable, seed: int, budget: int) -> dict[str, Any]:
    """The protocol on one split seed with *engine*: search on validation folds, then test once."""
    started = time.perf_counter()
    train, test = stratified_split(table, 0.25, seed)
    folds = [stratified_split(train, 0.25, seed + fold) for fold in range(FOLDS)]
    # Both engines unweighed (β 0), as the comparison README reports was run.
    space = replace(engine.search_space, factors=(64, 128), iterations=(15,), activity_exponent=(0.0,))
    search = random_search([part.to_matrix().matrix for part, _ in folds],
                           [held.to_matrix().matrix for _, held in folds], budget, seed, 10, space, fit=engine.fit)
    train_matrix, test_matrix = train.to_matrix().matrix, test.to_matrix().matrix
    _, metrics = evaluate_ranking(*engine.fit(train_matrix, search.best.params), train_matrix, test_matrix, 10)
    return {"ndcg@10": round(metrics["ndcg@10"], 4), "map@10": round(metrics["map@10"], 4),
            "validation_ndcg@10": round(search.best.metrics["ndcg@10"], 4),
            "chosen": asdict(search.best.params), "seconds": round(time.perf_counter() - started, 1)}


def run(quick: bool = False) -> dict[str, Any]:
    """Both engines on each seed; the Spark to implicit ratios of the mean nDCG@10 and of the wall time."""
    from chalicelib.training.spark_als import SparkAlsEngine

    seeds, budget = ((1,), 4) if quick else (SEEDS, BUDGET)
    table = movielens_table()
    spark = SparkAlsEngine("local[2]", {"spark.ui.enabled": "false", "spark.driver.host": "127.0.0.1",
                                        "spark.driver.bindAddress": "127.0.0.1", "spark.sql.shuffle.partitions": "4"})
    results: dict[str, dict[str, Any]] = {"implicit": {}, "spark": {}}
    with spark:
        for seed in seeds:  # interleaved, so that a change in the machine's load touches both engines
            for name, engine in (("implicit", IMPLICIT), ("spark", spark)):
                results[name][str(seed)] = tune_and_test(engine, table, seed, budget)
                print(f"seed {seed}, {name}: {results[name][str(seed)]}", file=sys.stderr, flush=True)
    means = {name: {figure: round(statistics.fmean(result[figure] for result in per_seed.values()), 4)
                    for figure in ("ndcg@10", "map@10", "seconds")}
             for name, per_seed in results.items()}
    return {
        "seeds": list(seeds), "budget": budget, "folds": FOLDS, "per_seed": results, "mean": means,
        "spark_vs_implicit_ndcg": round(means["spark"]["ndcg@10"] / means["implicit"]["ndcg@10"], 4),
        "spark_vs_implicit_seconds": round(means["spark"]["seconds"] / means["implicit"]["seconds"], 2),
    }


if __name__ == "__main__":
    raise SystemExit(standalone(run, __doc__, "seed 1, 4 trials each"))
