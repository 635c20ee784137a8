"""Bounded, seeded hyperparameter search on a validation split."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import scipy.sparse as sp

from chalicelib.training.als import AlsParameters, fit_als
from chalicelib.training.metrics import evaluate_ranking


@dataclass(frozen=True)
class SearchSpace:
    """Where the random search looks; ranges are sampled log-uniformly."""

    factors: tuple[int, ...] = (16, 32, 64, 128)
    regularization: tuple[float, float] = (0.01, 10.0)
    alpha: tuple[float, float] = (0.5, 20.0)
    iterations: tuple[int, ...] = (10, 15, 20, 30)
    weighting: tuple[str, ...] = ("none", "bm25")

    def sample(self, rng: np.random.Generator, seed: int) -> AlsParameters:
        """One random configuration."""
        def log_uniform(low: float, high: float) -> float:
            return float(math.exp(rng.uniform(math.log(low), math.log(high))))

        return AlsParameters(
            factors=int(rng.choice(self.factors)),
            regularization=round(log_uniform(*self.regularization), 4),
            alpha=round(log_uniform(*self.alpha), 3),
            iterations=int(rng.choice(self.iterations)),
            random_state=seed,
            weighting=str(rng.choice(self.weighting)),
        )


@dataclass(frozen=True)
class Trial:
    """One evaluated configuration."""

    params: AlsParameters
    metrics: dict[str, float]
    seconds: float


@dataclass
class SearchResult:
    """Every trial, in order, and the best by the target metric."""

    target: str
    trials: list[Trial] = field(default_factory=list)

    @property
    def best(self) -> Trial:
        return max(self.trials, key=lambda trial: trial.metrics[self.target])


def evaluate_params(params: AlsParameters, train: sp.csr_matrix, validation: sp.csr_matrix, k: int) -> dict[str, float]:
    """Fit on *train*, rank for every user, score against *validation*."""
    user_factors, item_factors = fit_als(train, params)
    return evaluate_ranking(user_factors, item_factors, train, validation, k)[1]


def random_search(
    train: sp.csr_matrix,
    validation: sp.csr_matrix,
    budget: int,
    seed: int,
    k: int = 10,
    space: SearchSpace | None = None,
    start: AlsParameters | None = None,
    on_trial: Callable[[Trial], None] = lambda trial: None,
) -> SearchResult:
    """Try *budget* configurations (the first one *start*, when given) and keep every score.

    The same *seed* gives the same configurations and the same fits.
    """
    space = space or SearchSpace()
    rng = np.random.default_rng(seed)
    result = SearchResult(target=f"ndcg@{k}")
    for index in range(budget):
        params = replace(start, random_state=seed) if (index == 0 and start is not None) else space.sample(rng, seed)
        started = time.perf_counter()
        metrics = evaluate_params(params, train, validation, k)
        trial = Trial(params=params, metrics=metrics, seconds=time.perf_counter() - started)
        result.trials.append(trial)
        on_trial(trial)
    return result


#: The search the quality benchmark runs (MovieLens-100k, every rating one interaction).
QUALITY_SPACE = SearchSpace()
QUALITY_START: AlsParameters | None = None
