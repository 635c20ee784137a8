"""Q3's replay benchmark (benchmarks/realtime.py): its requests, its scoring and its choice, on tiny data.

The replay itself runs on the tiny model (tests.support.tiny_artifact) through the real event log on
both emulators, so its answers are those hand-checked in tests/serving/test_personalizer.py.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest

from benchmarks import realtime
from benchmarks.realtime import KNOWN, NEW, UserReplay, choose_fresh_weight, ndcg_per_request, user_replays
from chalicelib.resources import Resources
from chalicelib.training.sources.movielens import Ratings


def ratings(*rows: tuple[str, str, int]) -> Ratings:
    """(user, item, timestamp) rows, four stars each."""
    users, items, times = zip(*rows, strict=True)
    return Ratings(user_ids=np.array(users), item_ids=np.array(items),
                   ratings=np.full(len(rows), 4.0, dtype=np.float32), timestamps=np.array(times, dtype=np.int64))


def test_a_period_replays_each_users_ratings_in_the_window_in_time_order():
    data = ratings(("a", "x", 5), ("a", "y", 20), ("b", "x", 12), ("a", "z", 11), ("b", "y", 11),
                   ("b", "w", 11), ("c", "x", 10), ("c", "y", 30))

    replays = user_replays(data, cutoff=10, end=30)

    # a rated before 10 (known), b and c did not; c's rating at 10 is in, the one at 30 (the end) out;
    # b's two ratings at 11 keep the file's order.
    assert replays == [UserReplay("a", True, ("z", "y"), (4.0, 4.0), (11, 20)),
                       UserReplay("b", False, ("y", "w", "x"), (4.0, 4.0, 4.0), (11, 11, 12)),
                       UserReplay("c", False, ("x",), (4.0,), (10,))]
    assert [replay.user_id for replay in user_replays(data, cutoff=10, end=None)][-1] == "c"
    assert user_replays(data, cutoff=10, end=None)[-1].item_ids == ("x", "y")


def test_a_request_after_k_events_is_scored_against_the_next_ten():
    replay = UserReplay("a", True, tuple(f"i{n}" for n in range(14)), (1.0,) * 14, tuple(range(14)))

    assert replay.following(3) == tuple(f"i{n}" for n in range(3, 13))
    assert replay.requests(13) and not replay.requests(14)
    events = replay.events(1, 3)
    assert [(event.item_id, event.event_id, event.event_type) for event in events] == [
        ("i1", "ml:a:i1", "rating"), ("i2", "ml:a:i2", "rating")]
    assert events[0].timestamp == datetime(1970, 1, 1, 0, 0, 1, tzinfo=timezone.utc)


def test_ndcg_counts_a_target_the_model_cannot_answer_in_the_ideal():
    hit_second = 1 / math.log2(3)

    scores = ndcg_per_request([["a", "b", "c"], ["a", "b"], ["c"], []],
                              [("b",), ("b", "never-recommended"), ("a",), ("a",)])

    assert scores.tolist() == pytest.approx([hit_second, hit_second / (1 + hit_second), 0.0, 0.0])


def test_the_fresh_weight_is_the_best_on_known_users_averaged_over_k_ties_to_the_smaller():
    def row(k, users, realtime_by_weight):
        return {"k": k, "users": users, "realtime": realtime_by_weight}

    rows = [row(1, KNOWN, {1.0: 0.1, 4.0: 0.3, 8.0: 0.2}), row(1, NEW, {1.0: 0.9, 4.0: 0.0, 8.0: 0.9}),
            row(3, KNOWN, {1.0: 0.1, 4.0: 0.1, 8.0: 0.2})]

    assert choose_fresh_weight(rows) == (4.0, pytest.approx({1.0: 0.1, 4.0: 0.2, 8.0: 0.2}))


def test_the_replay_writes_the_events_and_asks_each_arm_through_the_event_log(dynamodb_settings, make_tiny_artifact):
    # Ratings weigh 1; with fresh weight 2, u0's rating of i1 folds in as a click (weight 2) does:
    # the answer is tests/serving/test_personalizer.py's U0_CLICKED_I1, i2 then i0.
    Resources(dynamodb_settings).model_registry.publish(make_tiny_artifact())
    settings = replace(dynamodb_settings, realtime_events=50, realtime_timeout_seconds=5.0)
    replays = [UserReplay("u0", True, ("i1", "i0"), (4.0, 4.0), (1, 2)),
               UserReplay("newbie", False, ("i0", "i1", "i2"), (4.0, 4.0, 4.0), (1, 2, 3))]
    arms = {weight: Resources(replace(settings, realtime_fresh_weight=weight)).personalizer for weight in (1.0, 2.0)}

    answers = realtime.replay(replays, Resources(settings).event_log,
                              Resources(replace(settings, realtime_events=0)).personalizer, arms, ks=(2, 1))

    assert [replay.user_id for replay in answers[1].replays] == ["u0", "newbie"]
    assert answers[1].model_only == [["i0", "i2", "i1"], ["i0", "i2", "i3", "i1"]]  # trained factors; popularity
    assert answers[1].realtime[2.0][0] == ["i2", "i0"]
    # The newbie after i0 then i1: x = (1.1, 5.1) / 11.81, i2 first; u0 has no rating left to score.
    assert [replay.user_id for replay in answers[2].replays] == ["newbie"]
    assert answers[2].realtime[1.0] == answers[2].realtime[2.0] == [["i2", "i3"]]
    assert len(list(Resources(settings).event_table.query("newbie"))) == 2  # replayed up to k, no further

    rows = realtime.score(answers, (1.0, 2.0))
    at_k1 = {row["users"]: row for row in rows if row["k"] == 1}
    # u0's next rating is i0: first in the model-only answer, second in the real-time one.
    assert at_k1[KNOWN]["model_only"] == 1.0
    assert at_k1[KNOWN]["lift"][2.0] == pytest.approx(1 / math.log2(3))
    # The newbie's next ratings are i1 and i2: 4th and 2nd by popularity, 3rd and 2nd after the
    # fold-in of i0 alone (x = (2.1, -1) / 11.81: i3, i2, i1); the ideal DCG is 1 + 1/log2(3).
    assert answers[1].realtime[1.0][1] == answers[1].realtime[2.0][1] == ["i3", "i2", "i1"]
    ideal = 1 + 1 / math.log2(3)
    assert at_k1[NEW]["model_only"] == pytest.approx((1 / math.log2(3) + 1 / math.log2(5)) / ideal)
    assert at_k1[NEW]["realtime"][2.0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / ideal)
    at_k2_new = next(row for row in rows if row["k"] == 2 and row["users"] == NEW)
    assert (at_k2_new["requests"], at_k2_new["realtime"][2.0]) == (1, 1.0)
