"""Event weights scaled by values: each transform by hand, and one answer for one event and for many."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chalicelib.eventlog.weighting import EventWeighting, ValueTransform

NO_VALUE = np.nan
VALUES = np.array([0.0, 1.0, 3.0, 7.0, 500.0, -2.0, NO_VALUE])


@pytest.mark.parametrize(("transform", "expected"), [
    (ValueTransform("none"), [1, 1, 1, 1, 1, 1, 1]),
    # values below 0 count 0; no value counts as one unit
    (ValueTransform("linear"), [0, 1, 3, 7, 500, 0, 1]),
    (ValueTransform("linear", cap=100), [0, 1, 3, 7, 100, 0, 1]),
    # log2(1 + v): one unit weighs 1, and each doubling of v + 1 one more
    (ValueTransform("log1p"), [0, 1, 2, 3, math.log2(501), 0, 1]),
    (ValueTransform("log1p", cap=15), [0, 1, 2, 3, 4, 0, 1]),
])
def test_each_transform_by_hand(transform, expected):
    np.testing.assert_allclose(transform.factors(VALUES), expected)
    assert [transform.factor(None if np.isnan(v) else float(v)) for v in VALUES] == pytest.approx(expected)


@pytest.mark.parametrize(("kind", "cap"), [("sqrt", None), ("linear", 0), ("log1p", -1), ("linear", math.inf)])
def test_an_unknown_transform_or_a_cap_not_above_zero_is_refused(kind, cap):
    with pytest.raises(ValueError):
        ValueTransform(kind, cap)


WEIGHTING = EventWeighting({"play": 1.0, "purchase": 8.0, "dislike": -4.0},
                           {"play": ValueTransform("log1p", cap=100), "purchase": ValueTransform("linear")})


def test_an_event_weighs_its_type_weight_times_its_value_factor():
    assert WEIGHTING.weight("play", 3) == pytest.approx(2.0)
    assert WEIGHTING.weight("purchase", 2) == 16.0  # two units bought
    assert WEIGHTING.weight("purchase", None) == 8.0  # no quantity: one
    assert WEIGHTING.weight("dislike", 10) == -4.0  # no transform: the value is ignored
    assert WEIGHTING.weight("view", 1) is None  # no weight: the event does not count


def test_training_and_fold_in_weigh_every_event_alike():
    # Training weighs the log's arrays at once, real-time fold-in one event at a time: the same numbers.
    event_types = np.array(["dislike", "play", "purchase", "view"])
    rng = np.random.default_rng(3)
    types = rng.integers(0, 4, 200)
    values = np.where(rng.random(200) < 0.2, np.nan, rng.integers(0, 300, 200)).astype(np.float32)
    batch = WEIGHTING.weights(event_types, types, values)
    one_by_one = [WEIGHTING.weight(event_types[t], None if np.isnan(v) else float(v)) for t, v in zip(types, values)]
    np.testing.assert_allclose(batch, [np.nan if w is None else w for w in one_by_one])


def test_without_values_every_event_counts_one_unit():
    weights = WEIGHTING.weights(np.array(["play", "purchase"]), np.array([0, 1, 1]), None)
    np.testing.assert_allclose(weights, [1.0, 8.0, 8.0])


def test_the_manifest_names_only_the_transforms_that_count():
    weighting = EventWeighting({"play": 1.0, "view": 1.0}, {"play": ValueTransform("log1p", 50),
                                                             "view": ValueTransform("none")})
    assert weighting.describe() == {"play": {"transform": "log1p", "cap": 50}}
