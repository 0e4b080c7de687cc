"""Small helpers for the plumbing tests: build and read real events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope
from tests.support.kafka import read_topic


def feedback_event(i: int = 0, **overrides) -> Envelope:
    fid = str(uuid.uuid4())
    data = FeedbackReceived(
        id=fid, channel="kiosk", rating={"scale": "mot", "value": (i % 7) - 3}, location=f"store-{i % 3}",
        received_at=datetime.now(UTC), source="test", **overrides,
    )
    return Envelope.new(FEEDBACK_RECEIVED, data, source="/test", key=f"place:store-{i % 3}", id=fid)


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    """Every message of ``topic`` from the start, once ``expected`` arrived (and up to each partition's end)."""
    return await read_topic(bootstrap, topic, at_least=expected, timeout=timeout)
