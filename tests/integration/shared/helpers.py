"""Small helpers for the plumbing tests: build and read real events."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope


def feedback_event(i: int = 0, **overrides) -> Envelope:
    fid = str(uuid.uuid4())
    data = FeedbackReceived(
        id=fid, channel="kiosk", rating={"scale": "mot", "value": (i % 7) - 3}, location=f"store-{i % 3}",
        received_at=datetime.now(UTC), source="test", **overrides,
    )
    return Envelope.new(FEEDBACK_RECEIVED, data, source="/test", key=f"place:store-{i % 3}", id=fid)


async def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 20.0) -> list:
    """Read ``expected`` messages from the start of every partition of a topic
    (partitions assigned directly: no consumer group, no join delay)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    messages = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions = set()
        while not partitions and loop.time() < deadline:
            await consumer.topics()  # refreshes metadata
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while len(messages) < expected and loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                messages.extend(msgs)
    finally:
        await consumer.stop()
    return messages
