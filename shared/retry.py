"""The one retry loop: call an operation again after a failure, waiting a capped,
growing delay, for ever (until cancelled).

Every background loop that must survive a dependency going away (the outbox
relay, the consumer runner and its dead-letter publishing, the publisher's
connection, topic creation, the API-key watcher, reporting's KPI refresher)
runs its body through :func:`retry_forever` instead of a hand-written
``while True: try ... except: sleep`` of its own. A body that runs for ever
while things work (a relay, a consumer) calls ``backoff.reset()`` once it made
progress, so that the next outage starts again from the short delay.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")

_logger = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Capped exponential delays: ``initial``, ``initial*factor``, ... up to ``maximum``,
    each spread by ``±jitter`` (a fraction) so that replicas do not retry in step."""

    initial: float = 0.2
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._next = self.initial

    def next_delay(self) -> float:
        """The delay to wait now; the one after it grows (up to ``maximum``)."""
        delay = self._next
        self._next = min(self._next * self.factor, self.maximum)
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return delay

    def reset(self) -> None:
        """Back to ``initial`` (call once the operation made progress again)."""
        self._next = self.initial

    async def wait(self) -> float:
        delay = self.next_delay()
        await asyncio.sleep(delay)
        return delay


def delay_for_attempt(
    attempt: int, *, initial: float, maximum: float, factor: float = 2.0, jitter: float = 0.0
) -> float:
    """The capped delay before retry number ``attempt`` (1 = the first retry), for
    retries scheduled in a database row rather than slept through; spread by
    ``±jitter`` (a fraction) like :class:`Backoff`'s."""
    delay = min(initial * factor ** max(attempt - 1, 0), maximum)
    if jitter:
        delay *= random.uniform(1 - jitter, 1 + jitter)
    return delay


async def retry_forever(
    operation: Callable[[], Awaitable[T]],
    *,
    what: str,
    backoff: Backoff | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    logger: logging.Logger | None = None,
    retry_on: tuple[type[Exception], ...] = (Exception,),
) -> T:
    """Run ``operation`` until it returns; after each failure (an exception of
    ``retry_on``; others propagate) log a warning naming ``what``, call ``on_error``
    (to record the error for health checks) and wait ``backoff``'s next delay.
    Cancellation always propagates. An operation that made progress before
    failing may call ``backoff.reset()`` itself."""
    backoff = backoff or Backoff()
    log = logger or _logger
    while True:
        try:
            return await operation()
        except asyncio.CancelledError:
            raise
        except retry_on as exc:
            honour_cancel()
            if on_error is not None:
                on_error(exc)
            delay = backoff.next_delay()
            log.warning(f"{what} failed; retrying", extra={"error": repr(exc), "backoff_s": round(delay, 3)})
            await asyncio.sleep(delay)


def honour_cancel() -> None:
    """Re-raise a cancellation that a library swallowed (asyncpg can, while reconnecting)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
