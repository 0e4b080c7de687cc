"""The SLA scheduler: escalates alerts nobody acknowledged in time.

Timers are columns (``alerts.sla_due_at``), so they survive restarts; each
round takes due alerts with ``FOR UPDATE SKIP LOCKED``, so replicas can all
run it without escalating one alert twice.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from services.alerts import service

logger = logging.getLogger(__name__)


async def run_once(pool: asyncpg.Pool, ctx: service.Context, *, limit: int = 100) -> list[str]:
    async with pool.acquire() as conn, conn.transaction():
        return await service.escalate_due(conn, ctx, limit=limit)


async def run(pool: asyncpg.Pool, ctx: service.Context) -> None:
    interval = ctx.settings.alerts_scheduler_interval_seconds
    while True:
        try:
            while len(await run_once(pool, ctx)) == 100:
                pass  # a backlog: keep going
            async with pool.acquire() as conn:
                await service.refresh_open_gauge(conn, ctx)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # database away: next round
            logger.warning("SLA scheduler round failed", extra={"error": repr(exc)})
        await asyncio.sleep(interval)
