"""Bounded, seeded hyperparameter search on a validation split."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import scipy.sparse as sp

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.training.als import AlsParameters, fit_als
from chalicelib.training.metrics import METRIC_NAMES, evaluate_ranking


@dataclass(frozen=True)
class SearchSpace:
    """The grid the random search samples from, without replacement.

    Regularisation is searched as a multiple of alpha: with implicit's
    confidence ``alpha * value``, the good region is a ridge where
    ``regularization / alpha`` stays roughly constant (measured on
    MovieLens-100k, see README), so sampling the ratio wastes fewer trials.
    The ridge is narrow: half a unit of the ratio off its top costs about 1 %
    of validation MAP@10 there, hence the finer steps around 6.
    """

    factors: tuple[int, ...] = (32, 64, 128)
    alpha: tuple[float, ...] = (2.0, 4.0, 6.0, 8.0, 12.0, 16.0)
    regularization_per_alpha: tuple[float, ...] = (4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 14.0)
    iterations: tuple[int, ...] = (15, 30)
    #: β of :func:`~chalicelib.training.als.weigh_by_activity`: 0.3 raised validation MAP@10 at every
    #: point of the ridge tried (README, "Offline quality"), so it is not searched by default.
    activity_exponent: tuple[float, ...] = (0.3,)

    def grid(self, seed: int) -> list[AlsParameters]:
        """Every configuration, in a seeded random order."""
        points = [
            AlsParameters(factors=f, regularization=round(a * r, 4), alpha=a, iterations=i, random_state=seed,
                          activity_exponent=b)
            for f in self.factors for a in self.alpha for r in self.regularization_per_alpha for i in self.iterations
            for b in self.activity_exponent
        ]
        order = np.random.default_rng(seed).permutation(len(points))
        return [points[i] for i in order]


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


#: Fits (user_factors, item_factors) on a matrix: :func:`fit_als`, or a training engine's ``fit``.
FitFunction = Callable[[sp.csr_matrix, AlsParameters], tuple[np.ndarray, np.ndarray]]


def evaluate_params(params: AlsParameters, train: sp.csr_matrix, validation: sp.csr_matrix, k: int,
                    fit: FitFunction = fit_als) -> dict[str, float]:
    """Fit on *train* with *fit*, rank for every user, score against *validation*."""
    user_factors, item_factors = fit(train, params)
    return evaluate_ranking(user_factors, item_factors, train, validation, k)[1]


def random_search(
    train: sp.csr_matrix | list[sp.csr_matrix],
    validation: sp.csr_matrix | list[sp.csr_matrix],
    budget: int,
    seed: int,
    k: int = 10,
    space: SearchSpace | None = None,
    start: AlsParameters | None = None,
    on_trial: Callable[[Trial], None] = lambda trial: None,
    fit: FitFunction = fit_als,
    target: str | None = None,
) -> SearchResult:
    """Try *budget* configurations of *space* (the first one *start*, when given) and keep every score.

    *train* and *validation* may be lists of matching folds; a configuration's
    score is then its mean over the folds. *fit*: the engine that fits (implicit by default).
    *target*: the metric that picks the best, ``ndcg@k`` unless given (e.g. ``map@k``).

    The same *seed* gives the same configurations, in the same order, and the same fits.
    """
    target = target or f"ndcg@{k}"
    if target not in {f"{name}@{k}" for name in METRIC_NAMES}:
        raise InvalidTrainingOptions(f"unknown search target {target!r}; expected one of "
                                     f"{', '.join(f'{name}@{k}' for name in METRIC_NAMES)}")
    space = space or SearchSpace()
    candidates = space.grid(seed)
    if start is not None:
        start = replace(start, random_state=seed)
        candidates = [start] + [params for params in candidates if params != start]
    result = SearchResult(target=target)
    folds = list(zip(train, validation)) if isinstance(train, list) else [(train, validation)]
    for params in candidates[:budget]:
        started = time.perf_counter()
        # Several validation folds average out the luck of one split when configurations are close.
        per_fold = [evaluate_params(params, fold_train, fold_validation, k, fit)
                    for fold_train, fold_validation in folds]
        metrics = {name: float(np.mean([fold[name] for fold in per_fold])) for name in per_fold[0]}
        trial = Trial(params=params, metrics=metrics, seconds=time.perf_counter() - started)
        result.trials.append(trial)
        on_trial(trial)
    return result

