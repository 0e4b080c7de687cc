"""One function per consumed event type; each runs inside the consumer's
database transaction (with the event id already recorded for dedupe)."""

from __future__ import annotations

import asyncpg

from services.alerts import service
from shared.events import Envelope


class Handlers:
    """Binds the handlers to the process's scorer, router, clock and settings."""

    def __init__(self, ctx: service.Context) -> None:
        self._ctx = ctx

    async def on_feedback_received(self, conn: asyncpg.Connection, events: list[Envelope]) -> None:
        """A batch's new ``feedback.received.v1`` events (a batch handler of the consumer runner)."""
        await service.on_feedback(conn, self._ctx, events)
