"""scripts/train.py end to end: a MovieLens file trained with fixed hyperparameters and published."""

from __future__ import annotations

import pytest

from chalicelib.resources import Resources
from tests.support import load_script

train_cli = load_script("train")

#: Ten users with 3 to 12 ratings each of 12 items, in u.data's tab-separated layout.
RATINGS = "".join(f"{user}\t{item}\t4\t{880000000 + user * 100 + item}\n"
                  for user in range(1, 11) for item in range(1, user + 3))


@pytest.fixture
def ratings_file(tmp_path):
    path = tmp_path / "u.data"
    path.write_text(RATINGS)
    return path


def published_hyperparameters(settings) -> dict:
    registry = Resources(settings).model_registry
    return registry.read_manifest(registry.live_version())["hyperparameters"]


def test_users_are_weighed_by_activity_by_default_and_the_mean_is_recorded(settings, ratings_file, monkeypatch):
    monkeypatch.setattr(train_cli, "settings_for_stage", lambda stage: settings)

    assert train_cli.main(["--ratings", str(ratings_file), "--factors", "4", "--iterations", "3"]) == 0

    hyperparameters = published_hyperparameters(settings)
    assert hyperparameters["activity_exponent"] == 0.3
    assert hyperparameters["activity_reference"] == pytest.approx(7.5)  # (3 + 4 + ... + 12) / 10


def test_activity_exponent_zero_trains_every_user_alike(settings, ratings_file, monkeypatch):
    monkeypatch.setattr(train_cli, "settings_for_stage", lambda stage: settings)

    assert train_cli.main(["--ratings", str(ratings_file), "--factors", "4", "--iterations", "3",
                           "--activity-exponent", "0"]) == 0

    hyperparameters = published_hyperparameters(settings)
    assert hyperparameters["activity_exponent"] == 0.0 and "activity_reference" not in hyperparameters
