"""One function per consumed event type."""

from __future__ import annotations

import logging
from functools import partial

import asyncpg

from services.survey import inviting, privacy
from services.survey.service import Context
from shared.contracts import SurveyRequested
from shared.events import Envelope
from shared.privacy import erasure

logger = logging.getLogger(__name__)


async def on_survey_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    request: SurveyRequested = event.data  # type: ignore[assignment]
    if await privacy.request_erased(ctx.settings.privacy_key(), conn, request):
        logger.info("survey request for an erased customer dropped", extra={"request_id": request.request_id})
        return
    await inviting.record_request(ctx, conn, request)


async def on_feedback_received(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's feedback: the surveys whose trigger names it invite its customer (never a
    customer erased since the feedback: a late or replayed event must not bring them back)."""
    await inviting.on_feedback(ctx, conn, [e.data for e in events],  # type: ignore[misc]
                               keep=partial(privacy.feedback_not_erased, ctx.settings.privacy_key(), conn))


async def on_erasure_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await erasure.apply(conn, event.data, settings=ctx.settings, erase=privacy.erase,  # type: ignore[arg-type]
                        now=ctx.clock.now())
