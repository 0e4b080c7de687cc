"""The shared retry loop: capped growing delays, reset, and retry until success."""

from __future__ import annotations

import asyncio

import pytest

from shared.retry import Backoff, delay_for_attempt, retry_forever


def test_backoff_grows_to_its_cap_and_resets() -> None:
    backoff = Backoff(initial=0.5, maximum=3.0, factor=2.0)
    assert [backoff.next_delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_jitter_stays_within_its_band() -> None:
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.2)
    delays = [backoff.next_delay() for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in delays)
    assert max(delays) - min(delays) > 0.05  # actually spread


def test_delay_for_attempt_is_capped() -> None:
    assert [delay_for_attempt(n, initial=2.0, maximum=10.0) for n in (1, 2, 3, 4, 9)] == [2.0, 4.0, 8.0, 10.0, 10.0]


async def test_retry_forever_retries_until_the_operation_succeeds() -> None:
    calls: list[int] = []
    errors: list[str] = []

    async def flaky() -> str:
        calls.append(1)
        if len(calls) < 4:
            raise ConnectionError(f"down {len(calls)}")
        return "up"

    result = await retry_forever(flaky, what="flaky", backoff=Backoff(initial=0.001, maximum=0.002),
                                 on_error=lambda exc: errors.append(str(exc)))
    assert result == "up"
    assert len(calls) == 4
    assert errors == ["down 1", "down 2", "down 3"]


async def test_retry_forever_lets_cancellation_through() -> None:
    async def never() -> None:
        raise OSError("still down")

    task = asyncio.create_task(retry_forever(never, what="never", backoff=Backoff(initial=0.01, maximum=0.01)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_retry_forever_retries_only_what_it_is_told_to() -> None:
    calls: list[str] = []

    async def fails_then_breaks() -> None:
        calls.append("call")
        if len(calls) == 1:
            raise ConnectionError("transient")
        raise ValueError("a bug, not an outage")

    with pytest.raises(ValueError, match="a bug"):
        await retry_forever(fails_then_breaks, what="picky", backoff=Backoff(initial=0.001, maximum=0.001),
                            retry_on=(ConnectionError,))
    assert len(calls) == 2
