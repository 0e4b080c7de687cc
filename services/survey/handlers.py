"""One function per consumed event type."""

from __future__ import annotations

import asyncpg

from services.survey import service
from services.survey.service import Context
from shared.events import Envelope


async def on_survey_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await service.record_request(ctx, conn, event.data)  # type: ignore[arg-type]
