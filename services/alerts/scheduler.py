"""The SLA scheduler: escalates alerts nobody acknowledged in time.

Timers are columns (``alerts.sla_due_at``), so they survive restarts; each
round takes due alerts with ``FOR UPDATE SKIP LOCKED``, so replicas can all
run it without escalating one alert twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import asyncpg

from services.alerts import repository as repo
from services.alerts import service

logger = logging.getLogger(__name__)


async def run_once(pool: asyncpg.Pool, ctx: service.Context, *, limit: int = 100) -> list[str]:
    async with pool.acquire() as conn, conn.transaction():
        return await service.escalate_due(conn, ctx, limit=limit)


PRUNE_EVERY_SECONDS = 3600.0


async def prune_history(pool: asyncpg.Pool, ctx: service.Context) -> int:
    """Forget customer moments older than ALERTS_HISTORY_DAYS (they are no longer 'recent')."""
    before = ctx.clock.now() - timedelta(days=ctx.settings.alerts_history_days)
    async with pool.acquire() as conn:
        return await repo.prune_moments(conn, before=before)


async def run(pool: asyncpg.Pool, ctx: service.Context) -> None:
    interval = ctx.settings.alerts_scheduler_interval_seconds
    last_prune = 0.0
    while True:
        try:
            while len(await run_once(pool, ctx)) == 100:
                pass  # a backlog: keep going
            async with pool.acquire() as conn:
                await service.refresh_open_gauge(conn, ctx)
            if time.monotonic() - last_prune > PRUNE_EVERY_SECONDS:
                last_prune = time.monotonic()
                pruned = await prune_history(pool, ctx)
                logger.info("pruned customer history", extra={"deleted": pruned})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away: next round
            logger.warning("SLA scheduler round failed", extra={"error": repr(exc)})
        await asyncio.sleep(interval)
