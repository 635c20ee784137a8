"""Token buckets: how many events a key or a user may post, refilled at a steady rate.

Kept in memory by each Lambda instance: the limit holds per instance, so N
warm instances let through up to N times the rate. That is enough to stop a
page or a script flooding the log, not a quota; a shared limit would need a
DynamoDB counter per request.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from typing import Callable

from chalicelib.errors import RateLimited

#: Buckets one instance keeps (least recently used ones are forgotten, i.e. refilled).
MAX_BUCKETS = 100_000


class RateLimiter:
    """One token bucket per name (a key id or a user), of *burst* tokens refilled at *per_second*.

    Parameters
    ----------
    per_second: sustained rate; 0 turns the limit off.
    burst: the most spent at once after a pause.
    what: how errors name the limited party, e.g. ``"key"``.
    clock: monotonic clock (tests replace it).
    """

    def __init__(self, per_second: float, burst: int, what: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = per_second
        self._burst = burst
        self._what = what
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # name -> (tokens, at)

    def spend(self, name: str, cost: int) -> None:
        """Take *cost* tokens from *name*'s bucket.

        A cost above *burst* (a batch larger than the burst) needs a full
        bucket and empties it.

        Raises
        ------
        RateLimited
            With the seconds until the bucket holds *cost* again; nothing is taken.
        """
        if self._rate <= 0:
            return
        cost = min(cost, self._burst)
        with self._lock:
            now = self._clock()
            tokens, at = self._buckets.pop(name, (float(self._burst), now))
            tokens = min(float(self._burst), tokens + (now - at) * self._rate)
            if cost > tokens:
                self._buckets[name] = (tokens, now)
                wait = (cost - tokens) / self._rate
                raise RateLimited(
                    f"too many events for this {self._what}: {cost} asked, {int(tokens)} left; "
                    f"the limit is {self._rate:g} a second, {self._burst} at once",
                    retry_after=max(1, math.ceil(wait)),
                )
            self._buckets[name] = (tokens - cost, now)
            while len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
