"""Intake use cases: plain async functions, no FastAPI, no aiokafka."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import asyncpg

from shared.contracts import FeedbackIn, FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope
from shared.kafka import Publisher
from shared.outbox import publish_durably

SOURCE = "/keymoment/intake"


def to_event(feedback: FeedbackIn, *, feedback_id: str, source: str, topic: str) -> tuple[str, Envelope]:
    data = FeedbackReceived(
        **feedback.model_dump(exclude_none=True),
        id=feedback_id,
        received_at=datetime.now(UTC),
        source=source,
    )
    envelope = Envelope.new(
        FEEDBACK_RECEIVED, data, source=SOURCE, key=feedback.partition_key(), subject=feedback_id, id=feedback_id
    )
    return topic, envelope


async def accept(
    feedback: FeedbackIn, *, publisher: Publisher, pool: asyncpg.Pool, topic: str, source: str
) -> str:
    """Make one feedback durable; returns its id."""
    feedback_id = str(uuid.uuid4())
    await publish_durably(publisher, pool, [to_event(feedback, feedback_id=feedback_id, source=source, topic=topic)])
    return feedback_id
