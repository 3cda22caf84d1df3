"""Per-API-key rate limiting: one token bucket per key.

Each key may spend ``burst`` requests at once, then ``rate_per_s`` per second as its bucket
refills. ``allow(key)`` answers (allowed, retry_after_s); the API turns a refusal into
``429 Too Many Requests`` with ``Retry-After: ceil(retry_after_s)``.

Public API:
    RateLimiter(rate_per_s, burst, *, clock=time.monotonic, max_keys=100_000)
        .allow(key, cost=1.0) -> (bool, float)   thread-safe
        .enabled -> bool                          False when rate_per_s <= 0 (everything allowed)
The state lives in one process; with several API processes each enforces its own share.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Hashable


class RateLimiter:
    def __init__(self, rate_per_s: float, burst: float, *, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000):
        if rate_per_s > 0 and burst < 1:
            raise ValueError(f"The rate-limit burst must be at least 1 (got {burst}).")
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[Hashable, tuple[float, float]] = {}  # key -> (tokens, time of last update)
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def allow(self, key: Hashable, cost: float = 1.0) -> tuple[bool, float]:
        """Spend ``cost`` tokens of ``key``'s bucket if it holds them: (True, 0.0). Otherwise spend
        nothing and answer (False, seconds until the bucket holds ``cost`` tokens)."""
        if not self.enabled:
            return True, 0.0
        if cost > self.burst:
            return False, float("inf")  # can never be afforded; callers should not ask
        with self._lock:
            now = self._clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._store(key, tokens - cost, now)
                return True, 0.0
            self._store(key, tokens, now)
            return False, (cost - tokens) / self.rate

    def _store(self, key, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)
        if len(self._buckets) > self._max_keys:
            self._prune(now)

    def _prune(self, now: float) -> None:
        """Forget buckets that have refilled: a full bucket is the same as no bucket."""
        refill = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < refill}
        # Keys are authenticated API keys, so this is rare; grow rather than prune on every call.
        self._max_keys = max(self._max_keys, 2 * len(self._buckets))
