"""server.ratelimit: token buckets per key, on a stepped clock and on the real one, across threads."""
import threading
import time

import pytest

from server.ratelimit import RateLimiter


class SteppedClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_burst_then_refusal_with_a_sane_retry_after():
    clock = SteppedClock()
    limiter = RateLimiter(rate_per_s=2.0, burst=5, clock=clock)
    assert [limiter.allow("key-a")[0] for _ in range(5)] == [True] * 5
    allowed, retry_after = limiter.allow("key-a")
    assert not allowed and retry_after == pytest.approx(0.5)   # one token at 2/s
    clock.now += 0.25
    allowed, retry_after = limiter.allow("key-a")
    assert not allowed and retry_after == pytest.approx(0.25)  # refusals spend nothing
    clock.now += 0.25
    assert limiter.allow("key-a") == (True, 0.0)
    assert not limiter.allow("key-a")[0]


def test_keys_are_independent_and_refill_caps_at_burst():
    clock = SteppedClock()
    limiter = RateLimiter(rate_per_s=1.0, burst=3, clock=clock)
    for _ in range(3):
        assert limiter.allow("a")[0]
    assert not limiter.allow("a")[0]
    assert limiter.allow("b")[0]
    clock.now += 3600  # an hour idle refills to the burst, not to 3600
    assert [limiter.allow("a")[0] for _ in range(4)] == [True, True, True, False]


def test_cost_and_disabled_limiter():
    clock = SteppedClock()
    limiter = RateLimiter(rate_per_s=1.0, burst=4, clock=clock)
    assert limiter.allow("k", cost=3)[0]
    allowed, retry = limiter.allow("k", cost=3)
    assert not allowed and retry == pytest.approx(2.0)
    assert limiter.allow("k", cost=5) == (False, float("inf"))
    off = RateLimiter(rate_per_s=0, burst=0)
    assert not off.enabled and all(off.allow("k")[0] for _ in range(1000))
    with pytest.raises(ValueError, match="burst"):
        RateLimiter(rate_per_s=1, burst=0)


def test_idle_buckets_are_pruned():
    clock = SteppedClock()
    limiter = RateLimiter(rate_per_s=10.0, burst=2, clock=clock, max_keys=100)
    for i in range(100):
        limiter.allow(f"k{i}")
    clock.now += 1.0  # every bucket is full again
    limiter.allow("new")
    limiter.allow("new2")
    assert len(limiter._buckets) <= 2


def test_threads_cannot_overspend_a_bucket():
    limiter = RateLimiter(rate_per_s=0.001, burst=50)  # real clock; no meaningful refill here
    granted = []
    barrier = threading.Barrier(8)

    def hammer():
        barrier.wait()
        granted.append(sum(limiter.allow("shared")[0] for _ in range(100)))

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(granted) == 50


def test_real_clock_refill():
    limiter = RateLimiter(rate_per_s=20.0, burst=1)
    assert limiter.allow("k")[0]
    allowed, retry = limiter.allow("k")
    assert not allowed and 0 < retry <= 0.05
    time.sleep(retry + 0.01)
    assert limiter.allow("k")[0]
