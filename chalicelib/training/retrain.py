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

from chalicelib.errors import ArtifactError, NoInteractions
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.models.artifact import ModelArtifact
from chalicelib.models.registry import ModelRegistry
from chalicelib.training.als import AlsParameters
from chalicelib.training.approximate_index import ApproximateIndexOptions, build_approximate_index
from chalicelib.training.engine import IMPLICIT, TrainingEngine, engine_for_algorithm
from chalicelib.training.event_arrays import EventLogSnapshot, training_cutoff
from chalicelib.training.gate import GateDecision, quality_gate
from chalicelib.training.interactions import InteractionTable, interaction_table
from chalicelib.training.metrics import (
    catalog_coverage,
    evaluate_ranking,
    limit_users,
    popularity_top_k,
    ranking_metrics,
)
from chalicelib.training.search import SearchResult, SearchSpace, random_search
from chalicelib.training.segments import DEFAULT_SEGMENTS, add_segments, check_segment_count
from chalicelib.training.spark_als import SPARK_ALGORITHM
from chalicelib.training.splits import TIME, SplitOutcome, split

logger = logging.getLogger(__name__)

#: Phases reported with their wall time, in order.
PHASES = ("read", "build", "search", "evaluate", "fit", "index", "segments", "upload")
#: Fewer users evaluated than this, and the report warns that its figures are noisy: with one
#: nDCG@10 per user (often 0 or 1), the mean of 100 moves by about 0.03 from one split to another.
MIN_EVALUATED_USERS = 100
#: Candidate and popularity both below this nDCG@k: the held-out part is probably not predictable
#: from the training part (a split decided by ties, ids that changed between the parts...).
NEAR_ZERO_NDCG = 0.01


@dataclass(frozen=True)
class RetrainOptions:
    """How a retrain splits, searches and decides.

    ``margin`` is the nDCG@k the candidate must gain over the live model
    (absolute, e.g. 0.005); it must always beat popularity. ``budget`` 0
    turns the search off: the configuration is ``start``, else the live
    model's, else the defaults. ``warm_refit``: the published model is fitted
    on all interactions starting from the evaluated candidate's factors, with
    a third of the iterations (on MovieLens-100k as good as a fit from
    scratch: nDCG@10 within 0.001 over three splits), instead of from scratch.
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
    warm_refit: bool = True
    force: bool = False
    dry_run: bool = False
    start: AlsParameters | None = None
    #: The grid searched (None: the engine's own, since λ means different things in each engine).
    space: SearchSpace | None = None
    #: Build an approximate top-N index into models of at least this many items (None: never).
    approximate_index_min_items: int | None = 100_000
    approximate_index: ApproximateIndexOptions = field(default_factory=ApproximateIndexOptions)
    #: Audience segments to cluster the published model's users into (0: none), seeded by ``seed``.
    user_segments: int = DEFAULT_SEGMENTS


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
    #: The test split asked for and the one used (and why), set when the interactions are built.
    split: SplitOutcome | None = None
    #: What makes the evaluation's figures doubtful, in words (the report and the manifest show them).
    warnings: list[str] = field(default_factory=list)
    #: Event type -> the transform of its value that weighed the interactions (types whose value counted).
    event_values: dict[str, Any] = field(default_factory=dict)
    #: The engine that fitted the candidate (``implicit`` or ``spark``).
    engine: str = "implicit"
    #: The evaluated candidate's (user, item) factors, which the published model's fit starts from.
    candidate_factors: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

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


#: Artifacts whose hyperparameters are :class:`AlsParameters` (of the engine named by the algorithm).
_ALS_ALGORITHMS = (IMPLICIT.algorithm, SPARK_ALGORITHM)


def live_parameters(artifact: ModelArtifact) -> AlsParameters | None:
    """The live model's configuration, when it is an ALS model this code can refit."""
    if artifact.algorithm not in _ALS_ALGORITHMS:
        return None
    known = {name: value for name, value in artifact.hyperparameters.items() if name in AlsParameters.__dataclass_fields__}
    known.setdefault("activity_exponent", 0.0)  # a model from before users were weighed weighed none
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


@dataclass(frozen=True)
class _Prepared:
    """The interaction table and the matrices the later phases fit and score on."""

    table: InteractionTable
    train: sp.csr_matrix
    inner_train: sp.csr_matrix
    validation: sp.csr_matrix
    test: sp.csr_matrix


def retrain(
    read_snapshot: Callable[[Callable[[int], None]], EventLogSnapshot],
    registry: ModelRegistry,
    weights: Mapping[str, float] | EventWeighting,
    options: RetrainOptions,
    progress: Progress | None = None,
    engine: TrainingEngine = IMPLICIT,
) -> RetrainResult:
    """Run the whole pipeline once: read, build, search, evaluate, gate, fit, upload.

    Parameters
    ----------
    read_snapshot: reads the event log (Scan or export), reporting progress.
    registry: where the live model is and where a new version goes.
    weights: event type -> weight, or an :class:`EventWeighting` that also scales events by their value.
    options: split, search budget, gate margin, flags.
    progress: phase hooks (progress bars in the CLI).
    engine: what fits the factors (implicit on this machine, or Spark); every other step is the same.

    Returns the result; ``published`` says whether a version went live and
    ``reason`` why (or why not).

    Raises
    ------
    NoInteractions
        When the events read hold no usable interaction.
    InvalidTrainingOptions
        When ``options.user_segments`` is out of range.
    """
    check_segment_count(options.user_segments)  # before the long part, not after
    progress = progress or Progress()
    result = RetrainResult(options=options, engine=engine.name)
    with _timed(result, "read", progress):
        snapshot = read_snapshot(progress.phase("read"))
    with _timed(result, "build", progress):
        prepared = _build(snapshot, weights, options, result)
    live = _live_configuration(registry, engine, result)
    with _timed(result, "search", progress):
        _search(prepared, options, engine, live, progress.phase("search", options.budget), result)
    with _timed(result, "evaluate", progress):
        _evaluate(prepared, options, engine, live, progress.phase("evaluate", 3), result)
    decision = _gate(options, result)
    if not decision.publish:
        return result
    with _timed(result, "fit", progress):
        matrix = prepared.table.to_matrix()
        start, fit_params = _refit_start(result, matrix.matrix.shape, options, engine)
        result.artifact = replace(
            engine.artifact(matrix, result.chosen, training_cutoff(snapshot), metrics=result.metrics, start=start,
                            fit_params=fit_params),
            forced=decision.forced,
        )
    with _timed(result, "index", progress):
        minimum = options.approximate_index_min_items
        if minimum is not None and result.artifact.n_items >= minimum:
            result.artifact = build_approximate_index(result.artifact, options.approximate_index)
    with _timed(result, "segments", progress):
        result.artifact = add_segments(result.artifact, options.user_segments, options.seed)
    if options.dry_run:
        result.reason += "; dry run: nothing published"
        return result
    with _timed(result, "upload", progress):
        result.version = registry.publish(result.artifact)
        result.published = True
        pruned = registry.prune(options.keep_versions)
        if pruned:
            logger.info("removed old versions %s", ", ".join(pruned))
    return result


def _build(snapshot: EventLogSnapshot, weights: Mapping[str, float] | EventWeighting, options: RetrainOptions,
           result: RetrainResult) -> _Prepared:
    """Interactions, the held-out test part, and a validation part carved from training only."""
    weighting = weights if isinstance(weights, EventWeighting) else EventWeighting(dict(weights))
    result.event_values = weighting.describe()
    table = interaction_table(snapshot, weighting, options.half_life_days)
    if len(table) == 0:
        raise NoInteractions("the event log holds no usable interaction")
    train, test, result.split = split(table, options.split, options.test_fraction, options.seed)
    # Validation is split like test was, so the search is judged the way the candidate will be.
    inner_train, validation, _ = split(train, result.split.used, options.test_fraction, options.seed + 1)
    if result.split.reason:
        result.warnings.append(result.split.reason)
    prepared = _Prepared(
        table=table,
        train=train.to_matrix().matrix,
        inner_train=inner_train.to_matrix().matrix,
        validation=limit_users(validation.to_matrix().matrix, options.max_eval_users, options.seed),
        test=limit_users(test.to_matrix().matrix, options.max_eval_users, options.seed),
    )
    result.counts = {
        "events": len(snapshot.events), "erased_users": len(snapshot.erased), "interactions": len(table),
        "users": int(table.user_ids.shape[0]), "items": int(table.item_ids.shape[0]),
        "train": len(train), "test": len(test), "validation": len(validation),
        "evaluated_users": int(np.count_nonzero(np.diff(prepared.test.indptr))),
    }
    return prepared


@dataclass(frozen=True)
class _LiveConfiguration:
    """The live model's ALS configuration and the engine that refits it."""

    params: AlsParameters
    engine: TrainingEngine


def _live_configuration(registry: ModelRegistry, engine: TrainingEngine, result: RetrainResult
                        ) -> _LiveConfiguration | None:
    """The live model's configuration, to refit as the comparison (and to try first, when of *engine*)."""
    result.live_version = registry.live_version()
    if result.live_version is None:
        return None
    try:
        artifact = registry.load(result.live_version)
    except ArtifactError as exc:
        logger.warning("live model %s cannot be read: %s", result.live_version, exc)
        return None
    params = live_parameters(artifact)
    refit_engine = engine_for_algorithm(artifact.algorithm, engine)
    if params is None or refit_engine is None:
        result.warnings.append(f"the live model ({artifact.algorithm}) cannot be refitted here for a like-for-like "
                               "comparison: the gate compares the candidate with popularity only")
        return None
    return _LiveConfiguration(params, refit_engine)


def _refit_start(result: RetrainResult, shape: tuple[int, int], options: RetrainOptions, engine: TrainingEngine
                 ) -> tuple[tuple[np.ndarray, np.ndarray] | None, AlsParameters | None]:
    """Where the published model's fit starts, and with which parameters (None, None: from scratch)."""
    factors = result.candidate_factors
    if (not options.warm_refit or not engine.supports_warm_start or factors is None
            or (factors[0].shape[0], factors[1].shape[0]) != shape):
        return None, None
    iterations = max(3, -(-result.chosen.iterations // 3))
    result.metrics["refit"] = {"warm_start": "candidate", "iterations": iterations}
    return factors, replace(result.chosen, iterations=iterations)


def _search(prepared: _Prepared, options: RetrainOptions, engine: TrainingEngine, live: _LiveConfiguration | None,
            tick: Callable[[int], None], result: RetrainResult) -> None:
    # The live configuration means the same only to the engine that fitted it.
    live_params = live.params if live is not None and live.engine is engine else None
    if options.budget == 0:  # search off: one fixed configuration
        result.search = None
        result.chosen = options.start or live_params or engine.default_parameters
        return
    # The first trial is the live configuration, so the search never picks worse on validation.
    result.search = random_search(
        prepared.inner_train, prepared.validation, options.budget, options.seed, options.k,
        options.space or engine.search_space, options.start or live_params, on_trial=lambda trial: tick(1),
        fit=engine.fit,
    )
    result.chosen = result.search.best.params


def _evaluate(prepared: _Prepared, options: RetrainOptions, engine: TrainingEngine,
              live: _LiveConfiguration | None, tick: Callable[[int], None], result: RetrainResult) -> None:
    """Candidate, popularity and the live configuration, on the same held-out data."""
    train, test, k = prepared.train, prepared.test, options.k
    result.candidate_factors = engine.fit(train, result.chosen)
    candidate = _metrics(*result.candidate_factors, train, test, k)
    tick(1)
    baseline = popularity_metrics(train, test, k)
    tick(1)
    # The live model itself was trained on data that includes today's held-out
    # interactions, so scoring it as-is would flatter it. Its configuration is
    # refitted on the same training part instead: a like-for-like comparison.
    live_metrics = _metrics(*live.engine.fit(train, live.params), train, test, k) if live is not None else None
    tick(1)
    result.metrics = {
        "engine": engine.name, "split": result.split.used, "split_check": result.split.as_dict(),
        "test_fraction": options.test_fraction, "seed": options.seed, "k": k,
        "half_life_days": options.half_life_days, "event_values": result.event_values,
        "evaluated_users": result.counts["evaluated_users"],
        "candidate": candidate, "popularity": baseline, "live": live_metrics,
        "live_version": result.live_version,
        "live_parameters": asdict(live.params) if live else None,
        "live_engine": live.engine.name if live else None,
        "validation": ({"target": result.search.target, "best": result.search.best.metrics[result.search.target],
                        "trials": len(result.search.trials)} if result.search else None),
    }
    result.warnings += evaluation_doubts(result.counts["evaluated_users"], candidate[result.target],
                               baseline[result.target], result.target)
    result.metrics["warnings"] = list(result.warnings)


def evaluation_doubts(evaluated_users: int, candidate: float, popularity: float, target: str) -> list[str]:
    """Why an evaluation's figures may not mean what they seem to, in words (none: they look plausible).

    *candidate* and *popularity* are their *target* scores on the held-out part.
    """
    doubts = []
    if evaluated_users < MIN_EVALUATED_USERS:
        doubts.append(f"only {evaluated_users} users were evaluated (fewer than {MIN_EVALUATED_USERS}): "
                      "differences of a few hundredths are noise")
    if candidate < NEAR_ZERO_NDCG and popularity < NEAR_ZERO_NDCG:
        doubts.append(f"the candidate ({target} {candidate:.4f}) and popularity ({popularity:.4f}) both score "
                      f"near zero: the held-out interactions look unpredictable from the training ones; "
                      "check the events' timestamps and try --split random")
    return doubts


def _gate(options: RetrainOptions, result: RetrainResult) -> GateDecision:
    target, metrics = result.target, result.metrics
    live = metrics["live"][target] if metrics["live"] else None
    decision = quality_gate(target, metrics["candidate"][target], metrics["popularity"][target], live,
                            options.margin, options.force)
    result.reason = decision.reason
    metrics["gate"] = {"passed": decision.passed, "forced": decision.forced, "margin": options.margin,
                       "target": target}
    return decision
