"""One function per consumed event type."""

from __future__ import annotations

import asyncpg

from services.reporting import repository
from shared.events import Envelope


async def on_feedback_received(conn: asyncpg.Connection, event: Envelope) -> None:
    await repository.add_feedback(conn, event.data)
