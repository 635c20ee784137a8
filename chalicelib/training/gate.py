"""The quality gate: whether a retrained candidate may replace the live model (a pure decision on numbers)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GateDecision:
    """The gate's verdict and the reason printed and recorded with it."""

    #: The candidate earned its publication.
    passed: bool
    #: It goes live: it passed, or publication was forced.
    publish: bool
    #: It goes live although it did not pass (``--force``).
    forced: bool
    reason: str


def quality_gate(
    target: str, candidate: float, popularity: float, live: float | None, margin: float, force: bool = False
) -> GateDecision:
    """Decide on the scores of candidate, popularity and live model (None: no live model) on one held-out set.

    The candidate passes when it beats popularity strictly and reaches the
    live model's score plus *margin*; with *force* it is published anyway,
    and the decision says so.

    Parameters
    ----------
    target: the metric's name, for the reason (e.g. ``ndcg@10``).
    candidate, popularity, live: the metric of each model.
    margin: what the candidate must gain over the live model (absolute).
    force: publish even when the candidate does not pass.
    """
    beats_popularity = candidate > popularity
    beats_live = live is None or candidate >= live + margin
    passed = beats_popularity and beats_live
    if passed:
        reason = f"candidate {target} {candidate:.4f} beats popularity {popularity:.4f}" + (
            f" and live {live:.4f} + margin {margin}" if live is not None else " (no live model to compare with)")
        return GateDecision(passed=True, publish=True, forced=False, reason=reason)
    why = []
    if not beats_popularity:
        why.append(f"does not beat popularity ({candidate:.4f} <= {popularity:.4f})")
    if not beats_live:
        why.append(f"does not beat the live model by {margin} ({candidate:.4f} < {live:.4f} + {margin})")
    reason = "candidate " + " and ".join(why) + ("; published anyway (--force)" if force else "")
    return GateDecision(passed=False, publish=force, forced=force, reason=reason)
