"""Reporting's consumed events, handled together: one batch handler for all five types, so each
consumer transaction takes its row locks in one order (``service.apply``); it runs inside the
consumer's transaction."""

from __future__ import annotations

import asyncpg

from services.reporting import erasures, service
from services.reporting.service import Batch, Context
from shared.events import (
    ALERT_RAISED,
    ALERT_UPDATED,
    FEEDBACK_RECEIVED,
    FEEDBACK_SCORED,
    SURVEY_INVITATION,
    Envelope,
    event_source,
)
from shared.privacy import erasure

CONSUMED = (FEEDBACK_RECEIVED, FEEDBACK_SCORED, ALERT_RAISED, ALERT_UPDATED, SURVEY_INVITATION)
SURVEY_SOURCE = event_source("survey")


async def on_events(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A transaction's new feedback.received.v1, feedback.scored.v1, alert.raised.v1, alert.updated.v1 and
    survey.invitation.v1 events at once (a batch handler registered for the five types)."""
    batch = Batch()
    for event in events:
        if event.type == FEEDBACK_RECEIVED.type:
            batch.received.append(event.data)  # type: ignore[arg-type]
            if event.source == SURVEY_SOURCE:  # a recovery answer counts only as survey sent it
                batch.from_survey.add(event.data.id)  # type: ignore[attr-defined]
        elif event.type == FEEDBACK_SCORED.type:
            batch.scored.append((event.data, event.time))  # type: ignore[arg-type]
        elif event.type in (ALERT_RAISED.type, ALERT_UPDATED.type):
            batch.alerts.append(event.data)  # type: ignore[arg-type]
        elif event.type == SURVEY_INVITATION.type:
            batch.steps.append(event.data)  # type: ignore[arg-type]
    await service.apply(conn, ctx, batch)


async def on_erasure_requested(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await erasure.apply(conn, event.data, settings=ctx.settings, erase=erasures.erase,  # type: ignore[arg-type]
                        now=ctx.clock.now())


async def on_erasure_applied(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await erasures.record_report(conn, event.data)  # type: ignore[arg-type]
