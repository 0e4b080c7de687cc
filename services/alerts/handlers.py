"""One function per consumed event type, bound to the context in ``create_app`` with
``partial(handler, ctx)``; each runs inside the consumer's database transaction (with the
event ids already recorded for dedupe)."""

from __future__ import annotations

import asyncpg

from services.alerts import feedback, privacy
from services.alerts.context import Context
from services.alerts.repository import AlertsRepository
from services.alerts.unit_of_work import UnitOfWork
from shared.events import Envelope
from shared.privacy import erasure


async def on_feedback_received(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's new ``feedback.received.v1`` events (a batch handler of the consumer runner);
    feedback of erased customers from before their erasure is dropped."""
    events = await privacy.drop_erased(conn, ctx.settings.privacy_key(), events)
    if events:
        await feedback.score_batch(UnitOfWork(AlertsRepository(conn)), ctx, events)


async def on_erasure_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await erasure.apply(conn, event.data, settings=ctx.settings, erase=privacy.erase,  # type: ignore[arg-type]
                        now=ctx.clock.now())
