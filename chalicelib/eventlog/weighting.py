"""How much one event weighs: its type's weight, scaled by its ``value`` where configured.

Training (the interaction matrix) and serving (real-time fold-in) both weigh
events through :class:`EventWeighting`, so a play count or a quantity means
the same in both. By default an event's ``value`` is ignored: every event of
a type weighs that type's weight.

Transforms of a value v (first capped to ``[0, cap]``; an event without a
value counts as one unit, v = 1):

* ``none``: 1, the value is ignored;
* ``linear``: v, so 3 plays weigh three times one play;
* ``log1p``: log(1 + v) / log(2), so one unit still weighs 1 and each doubling
  of ``v + 1`` adds one more: 3 plays weigh 2, 7 weigh 3, 1 000 weigh about 10.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from chalicelib.config import VALUE_TRANSFORMS as TRANSFORMS
from chalicelib.config import Settings

NONE, LINEAR, LOG1P = TRANSFORMS


@dataclass(frozen=True)
class ValueTransform:
    """What an event's ``value`` does to its weight: *kind* (one of :data:`TRANSFORMS`), after a *cap*."""

    kind: str = NONE
    cap: float | None = None

    def __post_init__(self) -> None:
        if self.kind not in TRANSFORMS:
            raise ValueError(f"unknown value transform {self.kind!r}; expected one of {', '.join(TRANSFORMS)}")
        if self.cap is not None and not (math.isfinite(self.cap) and self.cap > 0):
            raise ValueError(f"a value cap must be a finite number > 0, got {self.cap!r}")

    def factors(self, values: np.ndarray) -> np.ndarray:
        """The weight factor of each of *values* (float64; NaN stands for an event without a value)."""
        values = np.asarray(values, dtype=np.float64)
        if self.kind == NONE:
            return np.ones(values.shape)
        units = np.clip(np.where(np.isnan(values), 1.0, values), 0.0, self.cap)
        return units if self.kind == LINEAR else np.log1p(units) / math.log(2.0)

    def factor(self, value: float | None) -> float:
        """The weight factor of one event's *value* (None: no value), as :meth:`factors` computes it.

        Plain float arithmetic: real-time fold-in weighs each recent event of a request this way.
        """
        if self.kind == NONE:
            return 1.0
        units = 1.0 if value is None or math.isnan(value) else max(float(value), 0.0)
        if self.cap is not None:
            units = min(units, self.cap)
        return units if self.kind == LINEAR else math.log1p(units) / math.log(2.0)

    def describe(self) -> dict[str, object]:
        """The transform as plain JSON values."""
        return {"transform": self.kind, "cap": self.cap}


@dataclass(frozen=True)
class EventWeighting:
    """Event type -> weight, and event type -> what its value does (types not named: the value is ignored)."""

    type_weights: Mapping[str, float]
    value_transforms: Mapping[str, ValueTransform] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> EventWeighting:
        """The stage's ``EVENT_WEIGHTS`` and ``EVENT_VALUES``: what training and serving both weigh events by."""
        return cls(settings.event_weight_map,
                   {event_type: ValueTransform(kind, cap) for event_type, kind, cap in settings.event_values})

    def weight(self, event_type: str, value: float | None) -> float | None:
        """The weight of one event, or None when its type has no weight (it does not count)."""
        weight = self.type_weights.get(event_type)
        if weight is None:
            return None
        transform = self.value_transforms.get(event_type)
        return weight if transform is None else weight * transform.factor(value)

    def weights(self, event_types: np.ndarray, types: np.ndarray, values: np.ndarray | None) -> np.ndarray:
        """The weight of each event, vectorised: *types* index the names *event_types*; NaN where a type has none.

        *values*: each event's value (NaN without one), or None when no event has one.
        """
        names = [str(name) for name in np.asarray(event_types).tolist()]
        type_weight = np.array([self.type_weights.get(name, np.nan) for name in names], dtype=np.float64)
        weight = type_weight[types] if len(types) else np.empty(0)
        for code, name in enumerate(names):
            transform = self.value_transforms.get(name)
            if transform is None or transform.kind == NONE:
                continue
            chosen = types == code
            event_values = values[chosen] if values is not None else np.full(int(chosen.sum()), np.nan)
            weight[chosen] *= transform.factors(event_values)
        return weight

    def describe(self) -> dict[str, object]:
        """The value transforms in use, as plain JSON values (for the manifest)."""
        return {name: transform.describe() for name, transform in sorted(self.value_transforms.items())
                if transform.kind != NONE}
