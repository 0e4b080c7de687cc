"""One function per consumed event type (feedback ones take a batch's events at once); each runs
inside the consumer's transaction."""

from __future__ import annotations

import asyncpg

from services.reporting import service
from services.reporting.service import Context
from shared.events import Envelope


async def on_feedback_received(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's new feedback.received.v1 events at once (a batch handler)."""
    await service.feedback_received(conn, ctx, [e.data for e in events])  # type: ignore[misc]


async def on_feedback_scored(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's new feedback.scored.v1 events at once (a batch handler)."""
    await service.feedback_scored(conn, ctx, [(e.data, e.time) for e in events])  # type: ignore[misc]


async def on_alert_raised(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await service.alert_raised(conn, ctx, event.data)  # type: ignore[arg-type]


async def on_alert_updated(ctx: Context, conn: asyncpg.Connection, event: Envelope) -> None:
    await service.alert_updated(conn, ctx, event.data)  # type: ignore[arg-type]


async def on_survey_invitation(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's survey.invitation.v1 events (funnel steps) at once."""
    await service.survey_steps(conn, ctx, [e.data for e in events])  # type: ignore[misc]
