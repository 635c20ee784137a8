"""scripts/benchmark_quality.py: several split seeds, each reported, and their mean."""

from __future__ import annotations

import json

import pytest

from chalicelib.training.sources.movielens import SAMPLE_RATINGS
from tests.support import load_script

quality_cli = load_script("benchmark_quality")


@pytest.fixture
def ratings(tmp_path):
    """The first 20 000 ratings of MovieLens-100k: enough users with test items, quick to fit."""
    path = tmp_path / "u.data"
    path.write_text("".join(SAMPLE_RATINGS.read_text().splitlines(keepends=True)[:20_000]))
    return path


def test_several_seeds_are_each_reported_and_averaged(ratings, capsys):
    assert quality_cli.main(["--ratings", str(ratings), "--seeds", "1,2", "--budget", "1", "--folds", "1",
                             "--json"]) == 0

    out = capsys.readouterr().out
    figures = json.loads(out.strip().splitlines()[-1])
    assert figures["seeds"] == [1, 2] and [seed["seed"] for seed in figures["per_seed"]] == [1, 2]
    for name in ("ndcg@10", "map@10", "popularity_ndcg@10"):
        assert figures[name] == pytest.approx(sum(seed[name] for seed in figures["per_seed"]) / 2, abs=1e-4)
    assert figures["per_seed"][0]["ndcg@10"] != figures["per_seed"][1]["ndcg@10"]  # two different splits
    assert "seed 1: chosen" in out and "seed 2: chosen" in out and "ours: ALS (implicit) mean" in out
    assert figures["select_on"] == "map@10" and figures["budget"] == 1
    assert all("validation_map@10" in seed for seed in figures["per_seed"])


def test_the_ridge_without_a_budget_is_searched_whole(ratings, capsys, monkeypatch):
    monkeypatch.setattr(quality_cli, "RIDGE_SPACE", quality_cli.SearchSpace(
        factors=(4,), alpha=(8.0,), regularization_per_alpha=(5.0, 6.0), iterations=(2,), activity_exponent=(0.0,)))
    assert quality_cli.main(["--ratings", str(ratings), "--grid", "ridge", "--folds", "1", "--json"]) == 0

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["budget"] == figures["trials"] == 2 and figures["folds"] == 1 and figures["grid"] == "ridge"
    assert figures["hyperparameters"]["factors"] == 4


def test_by_default_the_retrains_own_search_chooses(ratings, capsys):
    """Q1's procedure: RETRAIN_BUDGET points of the retrain's grid, users weighed by activity."""
    assert quality_cli.main(["--ratings", str(ratings), "--folds", "1", "--json"]) == 0

    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    default = quality_cli.SearchSpace()
    assert figures["grid"] == "retrain" and figures["budget"] == figures["trials"] == quality_cli.RETRAIN_BUDGET
    chosen = figures["hyperparameters"]
    assert chosen["activity_exponent"] in default.activity_exponent and chosen["factors"] in default.factors
    assert chosen["alpha"] in default.alpha and chosen["iterations"] in default.iterations


def test_seeds_must_be_integers(capsys):
    with pytest.raises(SystemExit):
        quality_cli.main(["--seeds", "1,two"])
    assert "seeds must be integers separated by commas" in capsys.readouterr().err


def test_a_value_transform_changes_the_figures_and_is_recorded(ratings, capsys):
    runs = {}
    for transform in ("none", "linear"):
        assert quality_cli.main(["--ratings", str(ratings), "--budget", "1", "--folds", "1",
                                 "--value-transform", transform, "--json"]) == 0
        runs[transform] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [runs[transform]["value_transform"] for transform in runs] == ["none", "linear"]
    # The same sampled point, fitted on other confidences: other answers.
    assert runs["none"]["hyperparameters"] == runs["linear"]["hyperparameters"]
    assert runs["none"]["ndcg@10"] != runs["linear"]["ndcg@10"]
