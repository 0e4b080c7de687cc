"""The SLA scheduler: every ``ALERTS_SCHEDULER_INTERVAL_SECONDS`` it escalates the alerts nobody
acknowledged in time (``escalation.escalate_due``, one transaction per round of up to
:data:`ROUND` alerts) and refreshes the open-alerts gauge. A round that fails (the database
away) is retried with the shared backoff. Old customer moments are pruned by the runtime
(``ServiceRuntime.retain``), not here.
"""

from __future__ import annotations

import asyncio

import asyncpg

from services.alerts import admin, escalation
from services.alerts.context import Context
from services.alerts.repository import reading, unit_of_work
from shared.retry import Backoff, retry_forever

ROUND = 100


async def run_once(pool: asyncpg.Pool, ctx: Context, *, limit: int = ROUND) -> list[str]:
    """One round of escalation in its own transaction; returns the ids of the escalated alerts."""
    async with unit_of_work(pool) as uow:
        return await escalation.escalate_due(uow, ctx, limit=limit)


async def _round(pool: asyncpg.Pool, ctx: Context) -> None:
    while len(await run_once(pool, ctx)) == ROUND:
        pass  # a backlog: keep going
    async with reading(pool) as repo:
        await admin.refresh_open_gauge(repo, ctx)


async def run(pool: asyncpg.Pool, ctx: Context) -> None:
    interval = ctx.settings.alerts_scheduler_interval_seconds
    backoff = Backoff(initial=interval, maximum=max(interval, 5.0))
    while True:
        await retry_forever(lambda: _round(pool, ctx), what="SLA scheduler round", backoff=backoff)
        backoff.reset()
        await asyncio.sleep(interval)
