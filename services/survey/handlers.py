"""One function per consumed event type."""

from __future__ import annotations

import asyncpg

from services.survey import inviting
from services.survey.service import Context
from shared.events import Envelope


async def on_survey_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await inviting.record_request(ctx, conn, event.data)  # type: ignore[arg-type]


async def on_feedback_received(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's feedback: the surveys whose trigger names it invite its customer."""
    await inviting.on_feedback(ctx, conn, [e.data for e in events])  # type: ignore[misc]
