"""Token buckets on a hand-moved clock: a burst, a steady refill, and the wait announced."""

from __future__ import annotations

import pytest

from chalicelib.access.rate_limit import RateLimiter
from chalicelib.errors import RateLimited
from tests.support import FakeClock


def test_a_burst_then_the_steady_rate_with_the_wait_announced():
    clock = FakeClock()
    limiter = RateLimiter(per_second=2, burst=10, what="user", clock=clock)

    limiter.spend("u1", 10)
    with pytest.raises(RateLimited) as refused:
        limiter.spend("u1", 3)
    assert refused.value.details == {"retry_after_seconds": 2}  # 3 tokens at 2 a second: 1.5 s, rounded up
    assert refused.value.headers == {"Retry-After": "2"}

    clock.now += 1.5
    limiter.spend("u1", 3)  # refilled exactly enough; the refused request took nothing
    limiter.spend("u2", 10)  # buckets are per name


def test_the_bucket_never_holds_more_than_the_burst():
    clock = FakeClock()
    limiter = RateLimiter(per_second=100, burst=5, what="key", clock=clock)
    clock.now += 3600
    limiter.spend("k", 5)
    with pytest.raises(RateLimited):
        limiter.spend("k", 1)


def test_a_batch_larger_than_the_burst_needs_a_full_bucket():
    clock = FakeClock()
    limiter = RateLimiter(per_second=1, burst=4, what="user", clock=clock)

    limiter.spend("u", 100)  # a full bucket lets one large batch through, and empties it
    with pytest.raises(RateLimited) as refused:
        limiter.spend("u", 100)
    assert refused.value.details == {"retry_after_seconds": 4}


def test_a_rate_of_zero_turns_the_limit_off():
    limiter = RateLimiter(per_second=0, burst=1, what="key", clock=FakeClock())
    for _ in range(100):
        limiter.spend("k", 1000)
