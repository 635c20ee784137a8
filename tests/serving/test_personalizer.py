"""Real-time recommendations: the fold-in maths on the tiny model, then the routes on both emulators.

Tiny model (see tests.support.tiny_artifact): item factors i0..i3 = (1,0), (0,1), (1,1), (2,0), so
G = YᵀY = [[6,1],[1,2]]; λ = 0.1, alpha = 1, G + λI = [[6.1,1],[1,2.1]]. u0 = (1,0) saw i3;
u2 = (1,1) saw i0 and i2 (training values 1). Popularity i0..i3 = 5, 1, 3, 2. A click weighs 2,
a view 1, a dislike -4. Fold-in: x = A⁻¹b, A = G + λI + Σ(cᵢ-1)yᵢyᵢᵀ, b = Σ_{cᵢ>0} cᵢyᵢ.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from chalicelib.eventlog.weighting import EventWeighting
from chalicelib.resources import Resources
from chalicelib.serving.recommender import Recommender
from chalicelib.training.event_arrays import EventArrays, EventLogSnapshot
from chalicelib.training.interactions import interaction_table
from tests.support import JSON_HEADERS, client_for, closed_port_url, silent_endpoint

# u0 + click i1: c = {i3: 1, i1: 2}; A = [[6.1,1],[1,3.1]] (det 17.91), b = (2,0) + 2(0,1) = (2,2)
# x = (3.1·2 - 2, -2 + 6.1·2) / 17.91 = (4.2, 10.2) / 17.91; i3 and i1 excluded.
U0_CLICKED_I1 = [("i2", 14.4 / 17.91), ("i0", 4.2 / 17.91)]
# Fold-in of one click on i0 alone: A = [[7.1,1],[1,2.1]] (det 13.91), b = (2,0),
# x = (4.2, -2) / 13.91; i0 excluded.
ONLY_CLICKED_I0 = [("i3", 8.4 / 13.91), ("i2", 2.2 / 13.91), ("i1", -2 / 13.91)]
U0_PERSONALIZED = [("i0", 1.0), ("i2", 1.0), ("i1", 0.0)]  # u0·y; i3 seen; tie broken by index
POPULAR = [("i0", 5.0), ("i2", 3.0), ("i3", 2.0), ("i1", 1.0)]


def ranked(answer):
    if isinstance(answer, dict):
        return [(item["item_id"], pytest.approx(item["score"], abs=1e-5)) for item in answer["items"]]
    return [(item_id, pytest.approx(score, abs=1e-5)) for item_id, score in zip(answer.item_ids, answer.scores)]


@pytest.fixture
def model(make_tiny_artifact):
    return Recommender(make_tiny_artifact())


# --- the maths ----------------------------------------------------------------------------------


def test_known_user_folds_in_the_training_row_plus_new_items(model):
    answer = model.recommend(model.profile_for_user("u0", ["i1"], [2.0]), 10)

    assert answer.strategy == "realtime"
    assert ranked(answer) == U0_CLICKED_I1


def test_training_row_is_folded_in_with_its_seen_values(make_tiny_artifact):
    model = Recommender(make_tiny_artifact(seen_values=np.array([4.0, 1.0, 1.0])))  # u0 had i3 with strength 4

    answer = model.recommend(model.profile_for_user("u0", ["i1"], [2.0]), 10)

    # c = {i3: 4, i1: 2}: A = [[6.1,1],[1,2.1]] + 3·[[4,0],[0,0]] + [[0,0],[0,1]] = [[18.1,1],[1,3.1]],
    # det 55.11, b = 4(2,0) + 2(0,1) = (8,2), x = (3.1·8 - 2, -8 + 18.1·2) / 55.11 = (22.8, 28.2) / 55.11.
    assert answer.strategy == "realtime"
    assert ranked(answer) == [("i2", 51.0 / 55.11), ("i0", 22.8 / 55.11)]


def test_unknown_user_gets_the_fold_in_of_the_events_alone(model):
    assert ranked(model.recommend(model.profile_for_user("new", ["i0"], [2.0]), 10)) == ONLY_CLICKED_I0

    # view i0, view i1, click i0: c = {i0: 3, i1: 1}; A = [[8.1,1],[1,2.1]] (det 16.01), b = (3,1),
    # x = (2.1·3 - 1, -3 + 8.1) / 16.01 = (5.3, 5.1) / 16.01; i0 and i1 excluded.
    answer = model.recommend(model.profile_for_user("new", ["i0", "i1", "i0"], [1.0, 1.0, 2.0]), 10)
    assert answer.strategy == "realtime"
    assert ranked(answer) == [("i3", 10.6 / 16.01), ("i2", 10.4 / 16.01)]


def test_use_trained_false_ignores_the_training_row(model):
    answer = model.recommend(model.profile_for_user("u0", ["i0"], [2.0], use_trained=False), 10)

    assert answer.strategy == "realtime"
    assert ranked(answer) == ONLY_CLICKED_I0  # i3, seen in training, is no longer excluded


def test_only_negative_events_of_a_new_user_give_popular_without_them(model):
    answer = model.recommend(model.profile_for_user("new", ["i0"], [-4.0]), 10)

    assert answer.strategy == "popular"
    assert ranked(answer) == [("i2", 3.0), ("i3", 2.0), ("i1", 1.0)]


# Regression: the check ran before repeats were summed, giving an all-zero realtime answer.
def test_a_click_cancelled_by_a_dislike_is_no_positive_interaction(model):
    answer = model.recommend(model.profile_for_user("new", ["i0", "i0"], [2.0, -4.0]), 10)  # net confidence -2

    assert answer.strategy == "popular"
    assert ranked(answer) == [("i2", 3.0), ("i3", 2.0), ("i1", 1.0)]


# u0 + click i1 with fresh weight 3: c = {i3: 1, i1: 2·3 = 6}; A = [[6.1,1],[1,2.1+5]] (det 42.31),
# b = (2,0) + 6(0,1) = (2,6), x = (7.1·2 - 6, -2 + 6.1·6) / 42.31 = (8.2, 34.6) / 42.31.
U0_CLICKED_I1_FRESH_3 = [("i2", 42.8 / 42.31), ("i0", 8.2 / 42.31)]


def test_a_fresh_weight_multiplies_a_known_users_recent_values_not_the_training_row(model):
    profile = model.profile_for_user("u0", ["i1"], [2.0], fresh_weight=3.0)

    assert ranked(model.recommend(profile, 10)) == U0_CLICKED_I1_FRESH_3
    assert profile.history_values.tolist() == [1.0, 6.0]  # i3 from training as it was, the click times 3
    assert ranked(model.recommend(model.profile_for_user("u0", ["i1"], [6.0]), 10)) == U0_CLICKED_I1_FRESH_3


def test_a_fresh_weight_leaves_a_strangers_fold_in_and_trained_factors_alone(model):
    stranger = model.profile_for_user("new", ["i0"], [2.0], fresh_weight=3.0)
    erased = model.profile_for_user("u0", ["i0"], [2.0], use_trained=False, fresh_weight=3.0)
    quiet = model.profile_for_user("u0", [], [], fresh_weight=3.0)

    assert ranked(model.recommend(stranger, 10)) == ONLY_CLICKED_I0
    assert ranked(model.recommend(erased, 10)) == ONLY_CLICKED_I0
    assert (quiet.strategy, ranked(model.recommend(quiet, 10))) == ("personalized", U0_PERSONALIZED)


def test_a_fresh_dislike_of_a_known_user_weighs_more_too(model):
    # u0 + dislike i0 (-4) with fresh weight 2: |c| = 8 in A, nothing in b: A = [[6.1+7,1],[1,2.1]]
    # (det 26.51), b = (2,0), x = (4.2, -2) / 26.51: the trained item i3 is the only positive signal.
    answer = model.recommend(model.profile_for_user("u0", ["i0"], [-4.0], fresh_weight=2.0), 10)

    assert ranked(answer) == [("i2", 2.2 / 26.51), ("i1", -2 / 26.51)]


def test_no_known_item_gives_the_trained_answer_or_popular(model):
    known = model.recommend(model.profile_for_user("u0", ["not-in-model"], [2.0]), 10)
    stranger = model.recommend(model.profile_for_user("new", ["not-in-model"], [2.0]), 10)

    assert (known.strategy, ranked(known)) == ("personalized", U0_PERSONALIZED)
    assert (stranger.strategy, ranked(stranger)) == ("popular", POPULAR)


# --- through the routes -------------------------------------------------------------------------

CUTOFF = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)


@pytest.fixture
def client(dynamodb_settings, make_tiny_artifact, tmp_path):
    """``events_client`` with the tiny model (cutoff 30 days ago) published.

    Built like ``events_client`` except for a 5 s real-time read timeout: with the
    default 0.25 s a slow emulator would turn an answer into "*_model_only"; and a
    fresh weight of 1, so that the expected answers are those of the maths above.
    """
    Resources(dynamodb_settings).model_registry.publish(make_tiny_artifact(training_cutoff=CUTOFF.isoformat()))
    with client_for(replace(dynamodb_settings, realtime_timeout_seconds=5.0, realtime_fresh_weight=1.0),
                    tmp_path) as client:
        yield client


def post(client, *events):
    response = client.http.post("/events", body=json.dumps({"events": list(events)}), headers=JSON_HEADERS)
    assert response.status_code == 202, response.body


def recommend(client, user_id):
    response = client.http.get(f"/users/{user_id}/recommendations")
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def event(user_id, item_id, event_type="click", **extra):
    return {"user_id": user_id, "item_id": item_id, "event_type": event_type, **extra}


def test_a_click_after_the_cutoff_changes_the_next_answer(client, dynamodb_settings):
    before = recommend(client, "u0")
    assert (before["strategy"], ranked(before)) == ("personalized", U0_PERSONALIZED)

    post(client, event("u0", "i1"))
    after = recommend(client, "u0")
    assert after["strategy"] == "realtime"
    assert ranked(after) == U0_CLICKED_I1  # the clicked item i1 is excluded


# Regression: events were judged by their own timestamp, so one arriving late with an old
# timestamp was taken to be in the model already and never personalised anything.
def test_a_late_event_with_an_old_timestamp_still_counts(client):
    # Stored after the model's cutoff, though it happened before: the model has not seen it.
    post(client, event("u0", "i1", timestamp=(CUTOFF - timedelta(days=1)).isoformat()))

    answer = recommend(client, "u0")

    assert (answer["strategy"], ranked(answer)) == ("realtime", U0_CLICKED_I1)


def test_events_logged_before_the_cutoff_are_left_to_the_model(client, dynamodb_settings, make_tiny_artifact):
    post(client, event("u0", "i1"))
    # A model whose training scan began after that event was stored already knows it.
    resources = Resources(dynamodb_settings)
    resources.model_registry.publish(
        make_tiny_artifact(training_cutoff=(datetime.now(timezone.utc) + timedelta(seconds=1)).isoformat()))

    answer = recommend(client, "u0")

    assert (answer["strategy"], ranked(answer)) == ("personalized", U0_PERSONALIZED)
    assert len(list(resources.event_table.query("u0"))) == 1  # stored, read, and left out


def test_realtime_fresh_weight_multiplies_a_known_users_fresh_events_only(dynamodb_settings, make_tiny_artifact,
                                                                         tmp_path):
    settings = replace(dynamodb_settings, realtime_timeout_seconds=5.0, realtime_fresh_weight=3.0)
    Resources(settings).model_registry.publish(make_tiny_artifact(training_cutoff=CUTOFF.isoformat()))
    with client_for(settings, tmp_path) as client:
        post(client, event("u0", "i1"), event("newbie", "i0", "view"), event("newbie", "i1", "view"),
             event("newbie", "i0"))
        known, stranger = recommend(client, "u0"), recommend(client, "newbie")

    assert (known["strategy"], ranked(known)) == ("realtime", U0_CLICKED_I1_FRESH_3)
    assert ranked(stranger) == [("i3", 10.6 / 16.01), ("i2", 10.4 / 16.01)]  # as with weight 1


def test_a_new_user_is_personalised_after_three_events(client):
    assert recommend(client, "newbie")["strategy"] == "popular"

    post(client, event("newbie", "i0", "view"), event("newbie", "i1", "view"), event("newbie", "i0"))

    answer = recommend(client, "newbie")
    assert answer["strategy"] == "realtime"
    assert ranked(answer) == [("i3", 10.6 / 16.01), ("i2", 10.4 / 16.01)]  # i0, i1 excluded


def test_a_value_scales_a_fresh_event_as_it_scales_it_in_training(dynamodb_settings, make_tiny_artifact, tmp_path):
    # Clicks weigh 2 times their value (quantity, count...); views ignore theirs.
    settings = replace(dynamodb_settings, realtime_timeout_seconds=5.0, event_values=(("click", "linear", 5.0),))
    Resources(settings).model_registry.publish(make_tiny_artifact(training_cutoff=CUTOFF.isoformat()))
    with client_for(settings, tmp_path) as client:
        post(client, event("newbie", "i0", value=3), event("newbie", "i1", "view", value=40),
             event("newbie", "i2", value=99))  # capped at 5
        answer = recommend(client, "newbie")

    weights = [2 * 3, 1, 2 * 5]
    expected = Recommender(make_tiny_artifact()).profile_for_user("newbie", ["i0", "i1", "i2"], weights)
    assert answer["strategy"] == "realtime"
    assert ranked(answer) == ranked(Recommender(make_tiny_artifact()).recommend(expected, 10))
    # Training turns the same events into the same strengths.
    arrays = EventArrays.from_strings(["newbie"] * 3, ["i0", "i1", "i2"], ["click", "view", "click"],
                                      [np.datetime64("2026-01-01", "ms")] * 3, values=[3, 40, 99])
    table = interaction_table(EventLogSnapshot(events=arrays, erased={}), EventWeighting.from_settings(settings))
    assert dict(zip(table.item_ids[table.items].tolist(), table.values.tolist())) == {"i0": 6, "i1": 1, "i2": 10}


def test_an_erased_user_is_a_stranger_then_starts_afresh(client):
    post(client, event("u2", "i1"))
    assert recommend(client, "u2")["strategy"] == "realtime"

    response = client.http.delete("/users/u2")
    assert response.status_code == 200 and json.loads(response.body)["deleted_events"] == 1

    erased, stranger = recommend(client, "u2"), recommend(client, "never-seen")
    assert erased.pop("user_id") == "u2" and stranger.pop("user_id") == "never-seen"
    assert erased == stranger
    assert (erased["strategy"], ranked(erased)) == ("popular", POPULAR)

    post(client, event("u2", "i0"))
    answer = recommend(client, "u2")
    # Neither u2's trained factors nor its training row (i0, i2) nor the erased click on i1.
    assert answer["strategy"] == "realtime"
    assert ranked(answer) == ONLY_CLICKED_I0


# --- DynamoDB down --------------------------------------------------------------------------------


@pytest.mark.parametrize("down", ["refusing", "silent"])
def test_event_log_down_answers_from_the_model_alone(settings, model_registry, make_tiny_artifact, tmp_path, down):
    model_registry.publish(make_tiny_artifact())
    with contextlib.ExitStack() as stack:
        url, asked = stack.enter_context(silent_endpoint()) if down == "silent" else (closed_port_url(), None)
        unreachable = replace(settings, dynamodb_endpoint_url=url, realtime_timeout_seconds=0.2)
        client = stack.enter_context(client_for(unreachable, tmp_path))
        # The first request also builds the clients and loads the model; the bound below is about
        # not waiting for DynamoDB (a hang would last the client's default 60 s), so it is left out.
        assert recommend(client, "warm-up")["strategy"] == "popular_model_only"
        for user_id, strategy, expected in [("u0", "personalized_model_only", U0_PERSONALIZED),
                                            ("stranger", "popular_model_only", POPULAR)]:
            started = time.monotonic()
            answer = recommend(client, user_id)
            elapsed = time.monotonic() - started

            assert (answer["strategy"], ranked(answer)) == (strategy, expected)
            assert elapsed < 3.0, f"{user_id} took {elapsed:.1f} s"
        assert asked is None or asked  # the silent endpoint was really asked, and kept waiting
