"""Rate limits in one process: a token bucket, and buckets per key with bounded memory.

One shape for every limit the services apply themselves (intake's API keys and SMTP
peers, survey's public pages). Limits are per process: behind N replicas a client
gets up to N times the rate, which bounds a flood without a shared store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


def _monotonic() -> float:
    return time.monotonic()  # looked up at each call, so a test may replace time.monotonic


class TokenBucket:
    """``rate`` tokens per second up to ``burst``; ``take`` never waits."""

    __slots__ = ("rate", "burst", "tokens", "stamp", "_now")

    def __init__(self, rate: float, burst: int, *, now: Callable[[], float] = _monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self._now = now
        self.stamp = now()

    def take(self, n: int = 1) -> float:
        """Take ``n`` tokens; returns 0 when granted, else seconds until they would be."""
        now = self._now()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= n:
            self.tokens -= n
            return 0.0
        if n > self.burst:
            return math.inf
        return (n - self.tokens) / self.rate

    @property
    def full(self) -> bool:
        """Refilled to its burst since it was last used (forgetting it changes nothing)."""
        return self.tokens + (self._now() - self.stamp) * self.rate >= self.burst


class KeyedLimiter:
    """A :class:`TokenBucket` per key (a client address, a link), ``per_minute`` tokens a
    minute up to ``burst`` (default: a minute's worth). At most ``max_keys`` buckets are
    kept: past it, full buckets are forgotten (they would grant the same), then the oldest."""

    def __init__(self, per_minute: float, *, burst: int | None = None, max_keys: int = 100_000,
                 now: Callable[[], float] = _monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit needs a positive rate")
        self.rate = per_minute / 60.0
        self.burst = burst if burst is not None else max(1, math.ceil(per_minute))
        self.max_keys = max_keys
        self._now = now
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, key: str, n: int = 1) -> float:
        """0 when ``key`` may go on, else seconds until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget()
            bucket = self._buckets[key] = TokenBucket(self.rate, self.burst, now=self._now)
        return bucket.take(n)

    def __len__(self) -> int:
        return len(self._buckets)

    def _forget(self) -> None:
        kept = {k: b for k, b in self._buckets.items() if not b.full}
        if len(kept) >= self.max_keys:  # all busy: drop the oldest half (dicts keep insertion order)
            kept = dict(list(kept.items())[len(kept) // 2:])
        self._buckets = kept
