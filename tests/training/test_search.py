"""random_search: the metric that picks the best configuration."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from chalicelib.errors import InvalidTrainingOptions
from chalicelib.training.search import SearchSpace, random_search

SPACE = SearchSpace(factors=(2, 4), alpha=(1.0, 4.0), regularization_per_alpha=(0.1, 10.0), iterations=(3,))


@pytest.fixture
def folds() -> tuple[sp.csr_matrix, sp.csr_matrix]:
    """40 users x 30 items, each user with 8 random items in train and 2 held out (seeded)."""
    rng = np.random.default_rng(0)
    train, held = np.zeros((40, 30), dtype=np.float32), np.zeros((40, 30), dtype=np.float32)
    for user in range(40):
        items = rng.choice(30, 10, replace=False)
        train[user, items[:8]], held[user, items[8:]] = 1.0, 1.0
    return sp.csr_matrix(train), sp.csr_matrix(held)


@pytest.mark.parametrize("target", ["ndcg@5", "map@5"])
def test_the_best_trial_is_the_best_by_the_target(folds, target):
    result = random_search(*folds, budget=8, seed=1, k=5, space=SPACE, target=target)

    assert result.target == target and len(result.trials) == 8
    assert result.best.metrics[target] == max(trial.metrics[target] for trial in result.trials)


def test_the_target_defaults_to_ndcg(folds):
    assert random_search(*folds, budget=1, seed=1, k=5, space=SPACE).target == "ndcg@5"


def test_an_unknown_target_is_refused_before_any_fit(folds):
    with pytest.raises(InvalidTrainingOptions, match="unknown search target 'map@10'; expected one of"):
        random_search(*folds, budget=1, seed=1, k=5, space=SPACE, target="map@10")
