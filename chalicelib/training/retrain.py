"""The retraining pipeline: event log -> interactions -> split -> search -> evaluate -> gate -> publish.

``scripts/retrain.py`` is a thin CLI over :func:`retrain`; tests call it directly.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import scipy.sparse as sp

from chalicelib.artifact import ModelArtifact, ModelStore
from chalicelib.errors import ArtifactError
from chalicelib.training.als import AlsParameters, als_artifact, fit_als
from chalicelib.training.event_source import EventLogSnapshot, training_cutoff
from chalicelib.training.interactions import interaction_table
from chalicelib.training.metrics import (
    catalog_coverage,
    evaluate_ranking,
    limit_users,
    popularity_top_k,
    ranking_metrics,
)
from chalicelib.training.search import SearchResult, SearchSpace, random_search
from chalicelib.training.splits import TIME, split

logger = logging.getLogger(__name__)

#: Phases reported with their wall time, in order.
PHASES = ("read", "build", "search", "evaluate", "fit", "upload")


@dataclass(frozen=True)
class RetrainOptions:
    """How a retrain splits, searches and decides.

    ``margin`` is the nDCG@k the candidate must gain over the live model
    (absolute, e.g. 0.005); it must always beat popularity.
    """

    split: str = TIME
    test_fraction: float = 0.2
    seed: int = 42
    k: int = 10
    budget: int = 12
    max_eval_users: int | None = 20_000
    margin: float = 0.0
    half_life_days: float | None = None
    keep_versions: int = 10
    force: bool = False
    dry_run: bool = False
    start: AlsParameters | None = None
    space: SearchSpace = field(default_factory=SearchSpace)


@dataclass
class RetrainResult:
    """Everything a retrain measured and decided."""

    options: RetrainOptions
    counts: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    search: SearchResult | None = None
    chosen: AlsParameters | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    live_version: str | None = None
    published: bool = False
    version: str | None = None
    reason: str = ""
    artifact: ModelArtifact | None = None

    @property
    def target(self) -> str:
        return f"ndcg@{self.options.k}"


class Progress:
    """Hooks for long phases; the CLI plugs progress bars in, tests leave them silent."""

    def phase(self, name: str, total: int | None = None) -> Callable[[int], None]:
        """Start phase *name*; returns a callback taking the number of units just done."""
        return lambda n: None

    def done(self, name: str, seconds: float) -> None:
        """Phase *name* finished after *seconds*."""


@contextmanager
def _timed(result: RetrainResult, name: str, progress: Progress) -> Iterator[None]:
    started = time.perf_counter()
    yield
    result.timings[name] = time.perf_counter() - started
    progress.done(name, result.timings[name])


def live_parameters(artifact: ModelArtifact) -> AlsParameters | None:
    """The live model's configuration, when it is an ALS model this code can refit."""
    if artifact.algorithm != "implicit-als":
        return None
    known = {name: value for name, value in artifact.hyperparameters.items() if name in AlsParameters.__dataclass_fields__}
    try:
        return AlsParameters(**known)
    except TypeError:
        return None


def _metrics(user_factors: np.ndarray, item_factors: np.ndarray, train: sp.csr_matrix, test: sp.csr_matrix,
             k: int) -> dict[str, float]:
    recommended, metrics = evaluate_ranking(user_factors, item_factors, train, test, k)
    metrics["coverage"] = catalog_coverage(recommended, train.shape[1])
    return metrics


def popularity_metrics(train: sp.csr_matrix, test: sp.csr_matrix, k: int) -> dict[str, float]:
    """The popularity baseline (most interacted items in *train*) scored on *test*."""
    evaluated = np.flatnonzero(np.diff(test.indptr) > 0)
    popularity = np.bincount(train.indices, minlength=train.shape[1]).astype(np.float64)
    recommended = popularity_top_k(popularity, train[evaluated], k)
    metrics = ranking_metrics(recommended, test[evaluated], k)
    metrics["coverage"] = catalog_coverage(recommended, train.shape[1])
    return metrics


def retrain(
    read_snapshot: Callable[[Callable[[int], None]], EventLogSnapshot],
    store: ModelStore,
    weights: Mapping[str, float],
    options: RetrainOptions,
    progress: Progress | None = None,
) -> RetrainResult:
    """Run the whole pipeline once.

    Parameters
    ----------
    read_snapshot: reads the event log (Scan or export), reporting progress.
    store: where the live model is and where a new version goes.
    weights: event type -> weight.
    options: split, search budget, gate margin, flags.
    progress: phase hooks (progress bars in the CLI).

    Returns the result; ``published`` says whether a version went live and
    ``reason`` why (or why not).
    """
    progress = progress or Progress()
    result = RetrainResult(options=options)
    k = options.k

    with _timed(result, "read", progress):
        snapshot = read_snapshot(progress.phase("read"))
    with _timed(result, "build", progress):
        table = interaction_table(snapshot, weights, options.half_life_days)
        if len(table) == 0:
            raise ValueError("the event log holds no usable interaction")
        train, test = split(table, options.split, options.test_fraction, options.seed)
        inner_train, validation = split(train, options.split, options.test_fraction, options.seed + 1)
        train_matrix = train.to_matrix().matrix
        test_matrix = limit_users(test.to_matrix().matrix, options.max_eval_users, options.seed)
        validation_matrix = limit_users(validation.to_matrix().matrix, options.max_eval_users, options.seed)
        result.counts = {
            "events": len(snapshot.events), "erased_users": len(snapshot.erased), "interactions": len(table),
            "users": int(table.user_ids.shape[0]), "items": int(table.item_ids.shape[0]),
            "train": len(train), "test": len(test), "validation": len(validation),
            "evaluated_users": int(np.count_nonzero(np.diff(test_matrix.indptr))),
        }

    result.live_version = store.live_version()
    live_params = None
    if result.live_version is not None:
        try:
            live_params = live_parameters(store.load(result.live_version))
        except ArtifactError as exc:
            logger.warning("live model %s cannot be read: %s", result.live_version, exc)

    with _timed(result, "search", progress):
        tick = progress.phase("search", options.budget)
        # The first trial is the live configuration, so the search never picks worse on validation.
        result.search = random_search(
            inner_train.to_matrix().matrix, validation_matrix, options.budget, options.seed, k,
            options.space, options.start or live_params, on_trial=lambda trial: tick(1),
        )
        result.chosen = result.search.best.params

    with _timed(result, "evaluate", progress):
        tick = progress.phase("evaluate", 3)
        candidate = _metrics(*fit_als(train_matrix, result.chosen), train_matrix, test_matrix, k)
        tick(1)
        baseline = popularity_metrics(train_matrix, test_matrix, k)
        tick(1)
        # The live model itself was trained on data that includes today's held-out
        # interactions, so scoring it as-is would flatter it. Its configuration is
        # refitted on the same training part instead: a like-for-like comparison.
        live_metrics = None
        if live_params is not None:
            live_metrics = _metrics(*fit_als(train_matrix, live_params), train_matrix, test_matrix, k)
        tick(1)
        result.metrics = {
            "split": options.split, "test_fraction": options.test_fraction, "seed": options.seed, "k": k,
            "half_life_days": options.half_life_days,
            "evaluated_users": result.counts["evaluated_users"],
            "candidate": candidate, "popularity": baseline, "live": live_metrics,
            "live_version": result.live_version,
            "live_parameters": asdict(live_params) if live_params else None,
            "validation": {"target": result.search.target, "best": result.search.best.metrics[result.search.target],
                           "trials": len(result.search.trials)},
        }

    target = result.target
    beats_popularity = candidate[target] > baseline[target]
    beats_live = live_metrics is None or candidate[target] >= live_metrics[target] + options.margin
    if beats_popularity and beats_live:
        result.reason = (f"candidate {target} {candidate[target]:.4f} beats popularity {baseline[target]:.4f}"
                         + (f" and live {live_metrics[target]:.4f} + margin {options.margin}" if live_metrics else
                            " (no live model to compare with)"))
        go = True
    else:
        why = []
        if not beats_popularity:
            why.append(f"does not beat popularity ({candidate[target]:.4f} <= {baseline[target]:.4f})")
        if not beats_live:
            why.append(f"does not beat the live model by {options.margin} "
                       f"({candidate[target]:.4f} < {live_metrics[target]:.4f} + {options.margin})")
        result.reason = "candidate " + " and ".join(why)
        go = options.force
        if options.force:
            result.reason += "; published anyway (--force)"
    result.metrics["gate"] = {"passed": beats_popularity and beats_live, "forced": options.force and not (
        beats_popularity and beats_live), "margin": options.margin, "target": target}

    if not go:
        return result
    with _timed(result, "fit", progress):
        result.artifact = replace(
            als_artifact(table.to_matrix(), result.chosen, training_cutoff(snapshot), metrics=result.metrics),
            forced=result.metrics["gate"]["forced"],
        )
    if options.dry_run:
        result.reason += "; dry run: nothing published"
        return result
    with _timed(result, "upload", progress):
        result.version = store.publish(result.artifact)
        result.published = True
        pruned = store.prune(options.keep_versions)
        if pruned:
            logger.info("removed old versions %s", ", ".join(pruned))
    return result

