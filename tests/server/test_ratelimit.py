"""server.ratelimit: token buckets per key held in the database (SQLite and PostgreSQL), on a stepped
clock and on the real one, across threads and across two limiters (two API processes)."""

import threading
import time

import pytest

from server.ratelimit import RateLimiter


@pytest.fixture
def make(database):
    """make(rate_per_s, burst, clock=...) -> a RateLimiter on a fresh database."""
    return lambda rate_per_s, burst, **kw: RateLimiter(database, rate_per_s, burst, **kw)


class SteppedClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_burst_then_refusal_with_a_sane_retry_after(make):
    clock = SteppedClock()
    limiter = make(rate_per_s=2.0, burst=5, clock=clock)
    assert [limiter.allow("key-a")[0] for _ in range(5)] == [True] * 5
    allowed, retry_after = limiter.allow("key-a")
    assert not allowed and retry_after == pytest.approx(0.5)  # one token at 2/s
    clock.now += 0.25
    allowed, retry_after = limiter.allow("key-a")
    assert not allowed and retry_after == pytest.approx(0.25)  # refusals spend nothing
    clock.now += 0.25
    assert limiter.allow("key-a") == (True, 0.0)
    assert not limiter.allow("key-a")[0]


def test_keys_are_independent_and_refill_caps_at_burst(make):
    clock = SteppedClock()
    limiter = make(rate_per_s=1.0, burst=3, clock=clock)
    for _ in range(3):
        assert limiter.allow("a")[0]
    assert not limiter.allow("a")[0]
    assert limiter.allow("b")[0]
    clock.now += 3600  # an hour idle refills to the burst, not to 3600
    assert [limiter.allow("a")[0] for _ in range(4)] == [True, True, True, False]


def test_cost_and_disabled_limiter(make):
    clock = SteppedClock()
    limiter = make(rate_per_s=1.0, burst=4, clock=clock)
    assert limiter.allow("k", cost=3)[0]
    allowed, retry = limiter.allow("k", cost=3)
    assert not allowed and retry == pytest.approx(2.0)
    assert limiter.allow("k", cost=5) == (False, float("inf"))
    off = make(rate_per_s=0, burst=0)
    assert not off.enabled and all(off.allow("k")[0] for _ in range(1000))
    with pytest.raises(ValueError, match="burst"):
        make(rate_per_s=1, burst=0)


def test_full_buckets_are_purged_and_limiters_share_buckets(make):
    clock = SteppedClock()
    api_a = make(rate_per_s=10.0, burst=2, clock=clock)
    api_b = make(rate_per_s=10.0, burst=2, clock=clock)  # another process, the same table
    assert api_a.allow("k")[0] and api_b.allow("k")[0]
    assert not api_a.allow("k")[0] and not api_b.allow("k")[0]
    for i in range(20):
        api_a.allow(f"k{i}")
    assert api_a.purge() == 0  # nothing has refilled yet
    clock.now += 1.0  # every bucket is full again
    assert api_b.purge() == 21
    assert api_a.allow("k")[0] and api_b.allow("k")[0]


def test_threads_cannot_overspend_a_bucket(make):
    limiter = make(rate_per_s=0.001, burst=50)  # real clock; no meaningful refill here
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


def test_real_clock_refill(make):
    limiter = make(rate_per_s=2.0, burst=1)
    assert limiter.allow("k")[0]
    allowed, retry = limiter.allow("k")
    assert not allowed and 0 < retry <= 0.5
    time.sleep(retry + 0.01)
    assert limiter.allow("k")[0]
