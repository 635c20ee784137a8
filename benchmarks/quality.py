"""Q1: offline quality on MovieLens-100k (../shared/PROTOCOL.md), mean over split seeds 1 to 5.

Each seed runs ``scripts/benchmark_quality.py`` in its own process: a stratified
75/25 split with that seed, hyperparameters chosen on ``FOLDS`` validation folds
carved from the training part only (the script's default: 24 seeded points of
the retrain's own grid, the best by validation MAP@10), the winner refitted and
evaluated once on test.

  python -m benchmarks.quality [--quick]    # --quick: seeds 1 and 2, 8 trials each
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROJECT_DIR = Path(__file__).resolve().parents[1]
SEEDS = (1, 2, 3, 4, 5)
#: Search trials a seed; None: the script's default (24 points of the retrain's grid).
BUDGET: int | None = None
FOLDS = 3


def quality_of_seed(seed: int, budget: int | None) -> dict[str, Any]:
    """The protocol's figures for one split seed (the script's last line of output)."""
    completed = subprocess.run(
        [sys.executable, str(PROJECT_DIR / "scripts" / "benchmark_quality.py"), "--seed", str(seed),
         *(["--budget", str(budget)] if budget is not None else []), "--folds", str(FOLDS), "--json"],
        cwd=PROJECT_DIR, capture_output=True, text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> dict[str, Any]:
    """Q1's figures: the mean nDCG@10 and MAP@10 over the seeds, and each seed's."""
    seeds, budget = (SEEDS[:2], 8) if quick else (SEEDS, BUDGET)
    # Seeds are independent and nothing here is timed: one process per core.
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        per_seed = dict(zip(seeds, pool.map(lambda seed: quality_of_seed(seed, budget), seeds)))
    return {
        "Q1_ndcg_at_10": round(statistics.fmean(result["ndcg@10"] for result in per_seed.values()), 4),
        "Q1_map_at_10": round(statistics.fmean(result["map@10"] for result in per_seed.values()), 4),
        "Q1_popularity_ndcg_at_10": round(statistics.fmean(result["popularity_ndcg@10"]
                                                           for result in per_seed.values()), 4),
        "Q1_seeds": list(seeds),
        "Q1_search_budget": next(iter(per_seed.values()))["budget"],
        "Q1_validation_folds": FOLDS,
        "Q1_per_seed": {str(seed): {name: result[name] for name in ("ndcg@10", "map@10", "popularity_ndcg@10",
                                                                     "hyperparameters")}
                        for seed, result in per_seed.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    print(json.dumps(run(parser.parse_args(argv).quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
