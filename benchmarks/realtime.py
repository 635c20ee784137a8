"""Q3 of the benchmark suite: what real-time personalisation buys, replayed on MovieLens-100k's own timeline.

Run from the project root::

    .venv/bin/python -m benchmarks.realtime            # seven fresh weights on validation
    .venv/bin/python -m benchmarks.realtime --quick    # three

The protocol, fixed before the test period was first replayed:

* **Periods.** Validation trains ALS (the retrain's defaults, :class:`AlsParameters`) on the
  ratings before the 60th percentile of the timestamps and replays those up to the 80th; test
  trains on the ratings before the 80th percentile and replays the rest. In a period a user is
  *known* when they rated before its cutoff (the model has their factors), *new* otherwise.
* **Requests.** A user's ratings in the replayed window, in time order (ties in file order). For
  k = 1, 3, 5, each user with more than k of them makes one request: their first k ratings are
  replayed, and the top 10 of the answer is scored against the up to 10 ratings that follow in
  the window: nDCG@10 with binary gains (``chalicelib.training.metrics``); an item the model does
  not know counts in the ideal and can never be a hit.
* **The real path.** The replayed ratings are written through ``EventLog.write`` (type
  ``rating``, event id ``ml:<user>:<item>`` as the importer makes it, their own timestamps) into
  DynamoDB (dynalite; moto without Node.js), after the model was published with a training
  cutoff before those writes, and each request is the :class:`Personalizer` the app builds
  (``Resources(settings).personalizer``) answering ``recommend(user, 10)``: one Query of the
  user's latest events, then the fold-in. Writes follow the replay: event 1 before the k = 1
  requests, events 2 and 3 before k = 3, 4 and 5 before k = 5.
* **Arms**, on the same requests: real time (``REALTIME_EVENTS=50``) and model only
  (``REALTIME_EVENTS=0``: a known user's trained factors, popularity for a new user). The lift
  is the ratio of their mean nDCG@10; its 90 % interval comes from a paired bootstrap over the
  requests (2 000 resamples, fixed seed).
* **The fresh weight** (``REALTIME_FRESH_WEIGHT``) is chosen on validation alone: every weight
  of :data:`FRESH_WEIGHTS` is replayed, and the one with the best known-user real-time nDCG@10,
  averaged over k = 1, 3, 5, wins (ties: the smaller weight). The test period is replayed with
  it, with 1 (every fresh event weighed as in training) and with the configured default.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from typing import Any, Iterable

import numpy as np
import scipy.sparse as sp

from benchmarks.answers import settings_for
from benchmarks.common import local_stack, standalone
from chalicelib.config import DEFAULT_REALTIME_FRESH_WEIGHT, Settings
from chalicelib.eventlog.item import Event
from chalicelib.eventlog.log import EventLog
from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.models.artifact import ModelArtifact
from chalicelib.resources import Resources
from chalicelib.serving.personalizer import Personalizer
from chalicelib.training.als import AlsParameters, als_artifact
from chalicelib.training.interactions import build_interactions
from chalicelib.training.metrics import ranking_metrics
from chalicelib.training.sources.movielens import SAMPLE_RATINGS, Ratings, read_movielens_100k

#: (name, start quantile, end quantile) of the timestamps: train before start, replay up to end.
PERIODS = (("validation", 0.6, 0.8), ("test", 0.8, 1.0))
#: How many fresh events are replayed before a request.
KS = (1, 3, 5)
#: The answer's length, and how many of the following ratings it is scored against.
N = 10
#: The fresh weights replayed on validation (``--quick``: fewer).
FRESH_WEIGHTS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
QUICK_FRESH_WEIGHTS = (1.0, 4.0, 16.0)
#: The k whose lifts are the headline figures.
HEADLINE_K = 3
EVENT_TYPE = "rating"
REALTIME_EVENTS = 50
#: Events per ``EventLog.write`` call.
WRITE_CHUNK = 500
BOOTSTRAP_RESAMPLES = 2000
KNOWN, NEW = "known", "new"


def say(message: str, started: float) -> None:
    print(f"[realtime {time.perf_counter() - started:6.1f} s] {message}", file=sys.stderr, flush=True)


# --- the replay's requests -------------------------------------------------------------------------


@dataclass(frozen=True)
class UserReplay:
    """One user's ratings in a replayed window, in time order."""

    user_id: str
    known: bool
    item_ids: tuple[str, ...]
    stars: tuple[float, ...]
    timestamps: tuple[int, ...]

    def requests(self, k: int) -> bool:
        """Whether the user makes a request after *k* replayed events (some rating must follow)."""
        return len(self.item_ids) > k

    def following(self, k: int) -> tuple[str, ...]:
        """What the answer after *k* replayed events is scored against."""
        return self.item_ids[k:k + N]

    def events(self, start: int, stop: int) -> list[Event]:
        """Ratings *start* to *stop* (exclusive) as the event log stores them."""
        return [Event(user_id=self.user_id, item_id=item_id, event_type=EVENT_TYPE,
                      event_id=f"ml:{self.user_id}:{item_id}", value=stars,
                      timestamp=datetime.fromtimestamp(timestamp, timezone.utc))
                for item_id, stars, timestamp in zip(self.item_ids[start:stop], self.stars[start:stop],
                                                     self.timestamps[start:stop], strict=True)]


def cutoffs(ratings: Ratings, start: float, end: float) -> tuple[int, int | None]:
    """The timestamps at quantiles *start* and *end* (None at the end of the data)."""
    at = [int(np.quantile(ratings.timestamps, q, method="lower")) for q in (start, end)]
    return at[0], at[1] if end < 1.0 else None


def training_mask(ratings: Ratings, cutoff: int) -> np.ndarray:
    """The ratings a model of the period trains on: those before *cutoff*."""
    return ratings.timestamps < cutoff


def user_replays(ratings: Ratings, cutoff: int, end: int | None) -> list[UserReplay]:
    """Each user's ratings from *cutoff* up to *end* (exclusive; None: the end), by user id."""
    before = training_mask(ratings, cutoff)
    window = ~before if end is None else ~before & (ratings.timestamps < end)
    known = set(ratings.user_ids[before].tolist())
    rows = np.flatnonzero(window)
    rows = rows[np.argsort(ratings.timestamps[rows], kind="stable")]  # ties keep the file's order
    by_user: dict[str, list[int]] = {}
    for row in rows.tolist():
        by_user.setdefault(str(ratings.user_ids[row]), []).append(row)
    return [UserReplay(user_id=user, known=user in known, item_ids=tuple(ratings.item_ids[rows].tolist()),
                       stars=tuple(ratings.ratings[rows].astype(float).tolist()),
                       timestamps=tuple(ratings.timestamps[rows].tolist()))
            for user, rows in sorted(by_user.items())]


def period_artifact(ratings: Ratings, cutoff: int, weighting: EventWeighting, params: AlsParameters
                    ) -> ModelArtifact:
    """ALS on the ratings before *cutoff*, each weighed as serving weighs a ``rating`` event.

    Its training cutoff is now: every event the replay writes afterwards is fresh to it.
    """
    before = training_mask(ratings, cutoff)
    weights = weighting.weights(np.array([EVENT_TYPE]), np.zeros(int(before.sum()), dtype=np.int64),
                                ratings.ratings[before].astype(np.float64))
    interactions = build_interactions(ratings.user_ids[before], ratings.item_ids[before], weights)
    return als_artifact(interactions, params, training_cutoff=datetime.now(timezone.utc))


# --- replaying -------------------------------------------------------------------------------------


@dataclass
class Answers:
    """The answers to one k's requests: each arm's top-N item ids, request by request."""

    replays: list[UserReplay]
    model_only: list[list[str]]
    #: fresh weight -> the real-time answers.
    realtime: dict[float, list[list[str]]]


def write_events(event_log: EventLog, events: list[Event]) -> None:
    """Store *events* (all new), or fail saying how many were not."""
    for start in range(0, len(events), WRITE_CHUNK):
        receipt = event_log.write(events[start:start + WRITE_CHUNK])
        if receipt.failed or receipt.duplicates:
            raise RuntimeError(f"replayed events not stored: {len(receipt.failed)} failed, "
                               f"{len(receipt.duplicates)} duplicates")


def answer(personalizer: Personalizer, user_id: str) -> list[str]:
    """The top N for *user_id*, as ``GET /users/{id}/recommendations`` answers without rules."""
    recommendations = personalizer.recommend(user_id, N)
    if recommendations.strategy.endswith("_model_only"):
        raise RuntimeError(f"the event log did not answer for {user_id!r}: the replay would be model-only")
    return recommendations.item_ids


def replay(replays: list[UserReplay], event_log: EventLog, model_only: Personalizer,
           realtime: dict[float, Personalizer], ks: Iterable[int] = KS) -> dict[int, Answers]:
    """Replay *replays* into *event_log*, k after k (ascending), and ask every arm after each step."""
    model_only_answers = {replay.user_id: answer(model_only, replay.user_id) for replay in replays}
    written = 0
    answers = {}
    for k in sorted(ks):
        requests = [replay for replay in replays if replay.requests(k)]
        write_events(event_log, [event for replay in requests for event in replay.events(written, k)])
        written = k
        answers[k] = Answers(requests, [model_only_answers[replay.user_id] for replay in requests],
                             {weight: [answer(personalizer, replay.user_id) for replay in requests]
                              for weight, personalizer in realtime.items()})
    return answers


# --- scoring ---------------------------------------------------------------------------------------


def ndcg_per_request(answers: list[list[str]], targets: list[tuple[str, ...]]) -> np.ndarray:
    """nDCG@N of each answer against its target items (binary gains), by the offline metrics' definition."""
    vocabulary: dict[str, int] = {}
    for ids in (*answers, *targets):
        for item_id in ids:
            vocabulary.setdefault(item_id, len(vocabulary))
    recommended = np.full((len(answers), N), -1, dtype=np.int64)
    for row, ids in enumerate(answers):
        recommended[row, :len(ids)] = [vocabulary[item_id] for item_id in ids[:N]]
    scores = np.empty(len(answers))
    for row, target in enumerate(targets):
        columns = sorted({vocabulary[item_id] for item_id in target})
        test = sp.csr_matrix((np.ones(len(columns)), (np.zeros(len(columns), dtype=np.int64), columns)),
                             shape=(1, max(len(vocabulary), 1)))
        scores[row] = ranking_metrics(recommended[row:row + 1], test, N)[f"ndcg@{N}"]
    return scores


def lift_interval(realtime: np.ndarray, model_only: np.ndarray, seed: int = 0) -> tuple[float, float] | None:
    """The 5th and 95th percentiles of mean(realtime) / mean(model_only) over paired bootstrap resamples."""
    if realtime.size == 0:
        return None
    picks = np.random.default_rng(seed).integers(0, realtime.size, size=(BOOTSTRAP_RESAMPLES, realtime.size))
    top, bottom = realtime[picks].mean(axis=1), model_only[picks].mean(axis=1)
    ratios = top[bottom > 0] / bottom[bottom > 0]
    if ratios.size == 0:
        return None
    return float(np.percentile(ratios, 5)), float(np.percentile(ratios, 95))


def ratio(top: float, bottom: float) -> float | None:
    return top / bottom if bottom > 0 else None


def score(answers: dict[int, Answers], weights: Iterable[float]) -> list[dict[str, Any]]:
    """One row per (k, known or new users): requests, model-only and real-time nDCG@10 by weight, lifts."""
    rows = []
    for k, at_k in sorted(answers.items()):
        targets = [replay.following(k) for replay in at_k.replays]
        model_only = ndcg_per_request(at_k.model_only, targets)
        realtime = {weight: ndcg_per_request(at_k.realtime[weight], targets) for weight in weights}
        for group in (KNOWN, NEW):
            mask = np.array([replay.known == (group == KNOWN) for replay in at_k.replays], dtype=bool)
            base = float(model_only[mask].mean()) if mask.any() else 0.0
            rows.append({
                "k": k, "users": group, "requests": int(mask.sum()), "model_only": base,
                "realtime": {weight: float(values[mask].mean()) if mask.any() else 0.0
                             for weight, values in realtime.items()},
                "lift": {weight: ratio(float(values[mask].mean()), base) if mask.any() else None
                         for weight, values in realtime.items()},
                "lift_interval": {weight: lift_interval(values[mask], model_only[mask])
                                  for weight, values in realtime.items()},
            })
    return rows


def choose_fresh_weight(rows: list[dict[str, Any]]) -> tuple[float, dict[float, float]]:
    """The weight with the best known-user real-time nDCG@10 averaged over k (ties: the smaller), and that curve."""
    known = [row for row in rows if row["users"] == KNOWN]
    curve = {weight: statistics.fmean(row["realtime"][weight] for row in known) for weight in known[0]["realtime"]}
    best = max(curve.values())
    return min(weight for weight, value in curve.items() if value == best), curve


# --- one period on the local stack -----------------------------------------------------------------


def replay_period(ratings: Ratings, start: float, end: float, settings: Settings, weights: Iterable[float],
                  params: AlsParameters, ks: Iterable[int] = KS) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Train on the ratings before quantile *start*, replay up to *end* through *settings*' stack; scored rows.

    *settings* names a fresh bucket and table (created here) on running emulators. Returns the rows
    of :func:`score` and what the period was (cutoffs, users, the model's size).
    """
    cutoff, stop = cutoffs(ratings, start, end)
    settings = replace(settings, realtime_events=REALTIME_EVENTS)
    resources = Resources(settings)
    resources.provision()
    artifact = period_artifact(ratings, cutoff, EventWeighting.from_settings(settings), params)
    with contextlib.redirect_stdout(sys.stderr):
        resources.model_registry.publish(artifact)
    replays = user_replays(ratings, cutoff, stop)
    weights = tuple(dict.fromkeys(weights))
    # Each arm is the personalizer the app builds for its settings.
    model_only = Resources(replace(settings, realtime_events=0)).personalizer
    realtime = {weight: Resources(replace(settings, realtime_fresh_weight=weight)).personalizer for weight in weights}
    rows = score(replay(replays, resources.event_log, model_only, realtime, ks), weights)

    def day(timestamp: int | None) -> str | None:
        return None if timestamp is None else datetime.fromtimestamp(timestamp, timezone.utc).date().isoformat()

    about = {"train_before": day(cutoff), "replay_until": day(stop) or "end",
             "training_ratings": int(training_mask(ratings, cutoff).sum()),
             "users": {KNOWN: sum(replay.known for replay in replays),
                       NEW: sum(not replay.known for replay in replays)}}
    return rows, about


def headline(rows: list[dict[str, Any]], group: str, weight: float, k: int = HEADLINE_K) -> float | None:
    """The lift of *group* at *k* with fresh weight *weight*."""
    return next(row["lift"][weight] for row in rows if row["k"] == k and row["users"] == group)


def table_rows(rows: list[dict[str, Any]], weight: float) -> list[dict[str, Any]]:
    """*rows* at one fresh weight, with the lift at weight 1 beside it: what README's table shows."""
    return [{"k": row["k"], "users": row["users"], "requests": row["requests"],
             "model_only_ndcg_at_10": round(row["model_only"], 4),
             "realtime_ndcg_at_10": round(row["realtime"][weight], 4),
             "lift": None if row["lift"][weight] is None else round(row["lift"][weight], 3),
             "lift_90_interval": None if row["lift_interval"][weight] is None
             else [round(bound, 3) for bound in row["lift_interval"][weight]],
             "realtime_ndcg_at_10_fresh_weight_1": round(row["realtime"][1.0], 4),
             "lift_fresh_weight_1": None if row["lift"][1.0] is None else round(row["lift"][1.0], 3)}
            for row in rows]


def run(quick: bool = False) -> dict[str, Any]:
    """Q3's figures: the validation curve, the chosen weight, and the test period's table."""
    started = time.perf_counter()
    ratings = read_movielens_100k(SAMPLE_RATINGS)
    params = AlsParameters()
    (_, valid_start, valid_end), (_, test_start, test_end) = PERIODS
    with local_stack() as (s3_url, dynamodb_url, engine):
        say(f"DynamoDB on {engine}; validation replay", started)
        validation, validation_about = replay_period(
            ratings, valid_start, valid_end, settings_for(s3_url, dynamodb_url),
            QUICK_FRESH_WEIGHTS if quick else FRESH_WEIGHTS, params)
        chosen, curve = choose_fresh_weight(validation)
        say(f"validation curve {curve}; chosen fresh weight {chosen:g}; test replay", started)
        test, test_about = replay_period(ratings, test_start, test_end, settings_for(s3_url, dynamodb_url),
                                         (1.0, chosen, DEFAULT_REALTIME_FRESH_WEIGHT), params)
    say("done", started)
    return {
        "Q3_realtime_lift": headline(test, NEW, chosen),
        "Q3_realtime_lift_known_users": headline(test, KNOWN, chosen),
        "Q3_realtime_lift_known_users_fresh_weight_1": headline(test, KNOWN, 1.0),
        "Q3_realtime_lift_known_users_default_weight": headline(test, KNOWN, DEFAULT_REALTIME_FRESH_WEIGHT),
        "Q3_fresh_weight_chosen": chosen,
        "Q3_fresh_weight_default": DEFAULT_REALTIME_FRESH_WEIGHT,
        "Q3_validation_curve": [{"fresh_weight": weight, "known_ndcg_at_10_mean_over_k": round(value, 4),
                                 **{f"known_ndcg_at_10_k{row['k']}": round(row["realtime"][weight], 4)
                                    for row in validation if row["users"] == KNOWN}}
                                for weight, value in curve.items()],
        "Q3_validation": table_rows(validation, chosen),
        "Q3_test": table_rows(test, chosen),
        "Q3_periods": {"validation": validation_about, "test": test_about},
        "Q3_engine": engine,
        "Q3_seconds": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    return standalone(run, __doc__, f"fresh weights {QUICK_FRESH_WEIGHTS} on validation", argv)


if __name__ == "__main__":
    raise SystemExit(main())
