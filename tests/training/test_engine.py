"""The contract every training engine keeps (implicit and Spark), on a tiny matrix with an obvious structure.

Users 0..9 interact only with items 0..5, users 10..19 only with items 6..11; item 12 and user 20
have no interaction at all.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp

from chalicelib.serving.recommender import Recommender
from chalicelib.training.als import AlsParameters
from chalicelib.training.engine import IMPLICIT, engine_for_algorithm, training_engine
from chalicelib.training.interactions import build_interactions
from tests.conftest import CPU_HEAVY_GROUP

pytestmark = CPU_HEAVY_GROUP

#: A configuration that finds the two groups, in each engine's λ convention; users unweighed (β 0)
#: but where a test weighs them.
PARAMETERS = {
    "implicit": AlsParameters(factors=4, regularization=0.1, alpha=4.0, iterations=10, activity_exponent=0.0),
    "spark": AlsParameters(factors=4, regularization=0.01, alpha=4.0, iterations=5, activity_exponent=0.0),
}


def grouped_matrix() -> sp.csr_matrix:
    rng = np.random.default_rng(3)
    rows, cols = [], []
    for user in range(20):
        group = user // 10
        for item in rng.choice(6, 4, replace=False) + 6 * group:
            rows.append(user)
            cols.append(int(item))
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(21, 13))


@pytest.fixture(params=["implicit", "spark"])
def engine(request):
    return IMPLICIT if request.param == "implicit" else request.getfixturevalue("spark_engine")


@pytest.fixture(scope="module")
def fits() -> dict:
    """Each engine's factors on ``grouped_matrix()``, fitted once: the tests below only read them."""
    return {}


@pytest.fixture
def fitted(engine, fits) -> tuple[np.ndarray, np.ndarray]:
    """(user_factors, item_factors) of *engine* on ``grouped_matrix()`` with its ``PARAMETERS``."""
    if engine.name not in fits:
        fits[engine.name] = engine.fit(grouped_matrix(), PARAMETERS[engine.name])
    return fits[engine.name]


def test_factors_have_a_row_per_user_and_item_and_zero_rows_where_nothing_happened(fitted):
    users, items = fitted

    assert users.shape == (21, 4) and items.shape == (13, 4)
    assert users.dtype == items.dtype == np.float32
    assert not users[20].any() and not items[12].any()
    assert np.all(np.abs(users[:20]).sum(axis=1) > 0)


def test_what_is_recommended_comes_from_the_users_own_group(fitted):
    matrix = grouped_matrix()
    users, items = fitted

    scores = users[:20] @ items.T
    scores[matrix[:20].nonzero()] = -np.inf
    best = scores.argmax(axis=1)

    assert [int(item) // 6 for item in best] == [user // 10 for user in range(20)]


def test_the_artifact_records_the_engine_and_how_serving_folds_events_in(engine):
    rows, cols = grouped_matrix().nonzero()
    interactions = build_interactions([f"u{row}" for row in rows], [f"i{col}" for col in cols])
    params = PARAMETERS[engine.name]

    artifact = engine.artifact(interactions, params, None)

    assert artifact.algorithm == engine.algorithm
    assert {name: artifact.hyperparameters[name] for name in ("factors", "regularization", "alpha")} == {
        "factors": 4, "regularization": params.regularization, "alpha": params.alpha}
    spark = engine.name == "spark"
    assert artifact.fold_in_conventions == {"confidence_offset": float(spark), "scale_regularization": spark}


def test_users_weighed_by_activity_are_folded_in_as_the_engine_trained_them(engine):
    """Real-time answers rely on fold-in weighing a user's events as training weighed their row."""
    matrix = grouped_matrix()
    extra = np.random.default_rng(5).choice(12, 8, replace=False)  # user 0 becomes the heavy one: 12 items
    matrix = sp.csr_matrix(matrix + sp.csr_matrix((np.ones(8, np.float32), (np.zeros(8, int), extra)), shape=(21, 13)))
    matrix.data[:] = 1.0
    rows, cols = matrix.nonzero()
    interactions = build_interactions([f"u{row:02d}" for row in rows], [f"i{col:02d}" for col in cols])
    # implicit solves by conjugate gradient, so its users need more sweeps to settle on the exact solution.
    params = replace(PARAMETERS[engine.name], activity_exponent=0.5, iterations=60 if engine.name == "implicit" else 10)

    artifact = engine.artifact(interactions, params, None)

    counts = np.diff(interactions.matrix.indptr)
    assert artifact.hyperparameters["activity_exponent"] == 0.5
    assert artifact.hyperparameters["activity_reference"] == pytest.approx(counts.mean())  # (12 + 19 * 4) / 20
    recommender = Recommender(artifact)
    for row in range(artifact.n_users):
        seen = artifact.item_ids[artifact.seen_indices[artifact.seen_indptr[row]:artifact.seen_indptr[row + 1]]]
        profile = recommender.profile_for_session(seen.tolist())  # value 1 each, as trained
        np.testing.assert_allclose(profile.vector, artifact.user_factors[row], rtol=2e-2, atol=2e-3)
    unweighed = engine.fit(interactions.matrix, replace(params, activity_exponent=0.0))
    assert not np.allclose(unweighed[1], artifact.item_factors, atol=0.05)  # the weights changed the fit


def test_a_live_model_is_refitted_by_its_own_engine_or_by_implicit():
    spark = training_engine("spark")  # no session starts until it fits
    assert engine_for_algorithm("spark-als", spark) is spark
    assert engine_for_algorithm("implicit-als", spark) is IMPLICIT
    assert engine_for_algorithm("spark-als", IMPLICIT) is None
    assert engine_for_algorithm("something-else", IMPLICIT) is None
    with pytest.raises(ValueError, match="unknown training engine 'tensorflow'"):
        training_engine("tensorflow")
