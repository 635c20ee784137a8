"""How long a request may still spend waiting on AWS.

API Gateway gives up on a request after 29 s and a Lambda after its timeout;
a request that waits longer than that on a slow S3 or DynamoDB answers nobody.
Each request therefore gets a :class:`Deadline`, and every retry loop stops
before an attempt that could not finish inside it.
"""

from __future__ import annotations

import time
from typing import Callable


class Deadline:
    """A moment, *seconds* from now on *clock*, after which no AWS call should be started."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._end = clock() + seconds

    def remaining(self) -> float:
        """Seconds left (0 once past)."""
        return max(0.0, self._end - self._clock())

    def allows(self, seconds: float) -> bool:
        """Whether something lasting up to *seconds* would end before the deadline."""
        return self._end - self._clock() >= seconds

