"""The quality gate on numbers: what a candidate must beat, the margin, and --force."""

from __future__ import annotations

import pytest

from chalicelib.training.gate import GateDecision, quality_gate


def test_beating_popularity_and_the_live_model_plus_margin_publishes():
    decision = quality_gate("ndcg@10", candidate=0.5, popularity=0.25, live=0.375, margin=0.125)

    assert decision == GateDecision(
        passed=True, publish=True, forced=False,
        reason="candidate ndcg@10 0.5000 beats popularity 0.2500 and live 0.3750 + margin 0.125",
    )


def test_without_a_live_model_beating_popularity_is_enough():
    decision = quality_gate("ndcg@10", candidate=0.3, popularity=0.2, live=None, margin=0.5)

    assert (decision.passed, decision.publish, decision.forced) == (True, True, False)
    assert decision.reason == "candidate ndcg@10 0.3000 beats popularity 0.2000 (no live model to compare with)"


def test_reaching_exactly_live_plus_margin_is_enough():
    # 0.25 + 0.25 is exact in binary floating point, so this is the boundary itself.
    assert quality_gate("ndcg@10", candidate=0.5, popularity=0.1, live=0.25, margin=0.25).passed
    assert not quality_gate("ndcg@10", candidate=0.5, popularity=0.1, live=0.25, margin=0.2500001).passed


def test_a_tie_with_popularity_is_refused():
    decision = quality_gate("ndcg@10", candidate=0.25, popularity=0.25, live=None, margin=0.0)

    assert decision == GateDecision(
        passed=False, publish=False, forced=False,
        reason="candidate does not beat popularity (0.2500 <= 0.2500)",
    )


@pytest.mark.parametrize("candidate, reason", [
    (0.3, "candidate does not beat the live model by 0.05 (0.3000 < 0.2800 + 0.05)"),
    (0.1, "candidate does not beat popularity (0.1000 <= 0.2000) and "
          "does not beat the live model by 0.05 (0.1000 < 0.2800 + 0.05)"),
])
def test_every_reason_for_a_refusal_is_given(candidate, reason):
    decision = quality_gate("ndcg@10", candidate=candidate, popularity=0.2, live=0.28, margin=0.05)

    assert (decision.passed, decision.publish, decision.reason) == (False, False, reason)


def test_force_publishes_a_refused_candidate_and_says_so():
    decision = quality_gate("map@10", candidate=0.1, popularity=0.2, live=None, margin=0.0, force=True)

    assert (decision.passed, decision.publish, decision.forced) == (False, True, True)
    assert decision.reason == "candidate does not beat popularity (0.1000 <= 0.2000); published anyway (--force)"


def test_force_on_a_passing_candidate_is_not_recorded_as_forced():
    decision = quality_gate("ndcg@10", candidate=0.5, popularity=0.2, live=0.4, margin=0.0, force=True)

    assert (decision.passed, decision.publish, decision.forced) == (True, True, False)
    assert "published anyway" not in decision.reason
