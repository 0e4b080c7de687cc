"""One function per consumed event type, bound to the context in ``create_app`` with
``partial(handler, ctx)``; each runs inside the consumer's database transaction."""

from __future__ import annotations

import asyncpg

from services.intake import privacy
from services.intake.service import Context
from shared.events import Envelope
from shared.privacy import erasure


async def on_erasure_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await erasure.apply(conn, event.data, settings=ctx.settings, erase=privacy.erase,  # type: ignore[arg-type]
                        now=ctx.clock.now())
