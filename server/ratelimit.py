"""Per-API-key rate limiting: one token bucket per key, held in the database so that every API
process (on any machine) spends from the same bucket.

Each key may spend ``burst`` requests at once, then ``rate_per_s`` per second as its bucket
refills. ``allow(key)`` answers (allowed, retry_after_s); the API turns a refusal into
``429 Too Many Requests`` with ``Retry-After: ceil(retry_after_s)``.

Public API:
    RateLimiter(db, rate_per_s, burst, *, clock=time.time)
        .allow(key, cost=1.0) -> (bool, float)   one short transaction; the bucket's row is locked
        .purge() -> int                           forget buckets that have refilled (housekeeping)
        .enabled -> bool                          False when rate_per_s <= 0 (everything allowed)
The clock is wall time: processes on several machines compare their times through the table.
"""

from __future__ import annotations

import time
from typing import Callable, Hashable


class RateLimiter:
    def __init__(self, db, rate_per_s: float, burst: float, *, clock: Callable[[], float] = time.time):
        if rate_per_s > 0 and burst < 1:
            raise ValueError(f"The rate-limit burst must be at least 1 (got {burst}).")
        self.db = db
        self.rate = float(rate_per_s)
        self.burst = float(burst)
        self._clock = clock

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
        bucket = str(key)
        with self.db.transaction() as tx:
            now = self._clock()
            tx.execute(
                "INSERT INTO rate_limits (bucket, tokens, updated_at) VALUES (?, ?, {ts}) "
                "ON CONFLICT (bucket) DO NOTHING",
                (bucket, self.burst, now),
            )
            row = tx.one("SELECT tokens, updated_at FROM rate_limits WHERE bucket = ? {for_update}", (bucket,))
            tokens = min(self.burst, row["tokens"] + max(0.0, now - row["updated_at"]) * self.rate)
            allowed = tokens >= cost
            tx.execute(
                "UPDATE rate_limits SET tokens = ?, updated_at = {ts} WHERE bucket = ?",
                (tokens - cost if allowed else tokens, now, bucket),
            )
        return (True, 0.0) if allowed else (False, (cost - tokens) / self.rate)

    def purge(self) -> int:
        """Forget buckets that have refilled: a full bucket is the same as no bucket."""
        if not self.enabled:
            return 0
        with self.db.transaction() as tx:
            return tx.execute(
                "DELETE FROM rate_limits WHERE updated_at < {ts}", (self._clock() - self.burst / self.rate,)
            )
