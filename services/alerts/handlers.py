"""One function per consumed event type, bound to the context in ``create_app`` with
``partial(handler, ctx)``; each runs inside the consumer's database transaction (with the
event ids already recorded for dedupe)."""

from __future__ import annotations

import logging

import asyncpg

from services.alerts import feedback
from services.alerts.context import Context
from services.alerts.repository import AlertsRepository
from services.alerts.unit_of_work import UnitOfWork
from shared.contracts import FeedbackReceived
from shared.events import Envelope, event_source

logger = logging.getLogger(__name__)

RECOVERY_SOURCE = event_source("survey")
"""The one source whose feedback may answer a recovery survey (reopen or close an alert)."""


async def on_feedback_received(ctx: Context, conn: asyncpg.Connection, events: list[Envelope]) -> None:
    """A batch's new ``feedback.received.v1`` events (a batch handler of the consumer runner)."""
    await feedback.score_batch(UnitOfWork(AlertsRepository(conn)), ctx, [_trusted(e) for e in events])


def _trusted(event: Envelope) -> FeedbackReceived:
    """The feedback as alerts may act on it: a recovery answer counts only on survey's own
    events; from any other source (intake refuses the field from API keys) the claim is
    dropped and the feedback handled as any other."""
    fb: FeedbackReceived = event.data  # type: ignore[assignment]
    if fb.survey is not None and fb.survey.recovery_for_alert_id is not None and event.source != RECOVERY_SOURCE:
        logger.warning("recovery answer from an untrusted source ignored",
                       extra={"feedback_id": fb.id, "source": event.source[:200]})
        return fb.model_copy(update={"survey": fb.survey.model_copy(update={"recovery_for_alert_id": None})})
    return fb
