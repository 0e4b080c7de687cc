"""One function per consumed event type."""

from __future__ import annotations

import asyncpg

from services.survey import repository
from shared.events import Envelope


async def on_survey_requested(conn: asyncpg.Connection, event: Envelope) -> None:
    await repository.add_request(conn, event.data)
