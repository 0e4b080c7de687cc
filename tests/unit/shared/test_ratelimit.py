"""Token buckets per key: a minute's worth at once, then the rate; bounded memory."""

from __future__ import annotations

import pytest

from shared.ratelimit import KeyedLimiter


def test_each_key_has_its_own_bucket_and_waits_are_said():
    now = [0.0]
    limiter = KeyedLimiter(60, burst=3, now=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("a") == pytest.approx(1.0)  # one a second
    assert limiter.take("b") == 0.0
    now[0] += 1.0
    assert limiter.take("a") == 0.0


def test_memory_stays_bounded_forgetting_full_buckets_first():
    now = [0.0]
    limiter = KeyedLimiter(60, burst=2, max_keys=4, now=lambda: now[0])
    for key in "abcd":
        limiter.take(key)
    now[0] += 5  # every bucket refilled: forgetting them changes nothing
    limiter.take("e")
    assert len(limiter) == 1
    for key in "fghi":
        limiter.take(key)
        limiter.take(key)  # busy (empty) buckets
    limiter.take("j")
    assert len(limiter) <= 4
    with pytest.raises(ValueError):
        KeyedLimiter(0)
