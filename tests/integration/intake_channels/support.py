"""A downstream consumer for the channel tests: reads ``feedback.received.v1``
through the real broker up to its end offsets and decodes each event."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope


def intake_settings(service_env: dict, **overrides):
    from services.intake.settings import IntakeSettings

    return IntakeSettings(**service_env, **overrides)


def dev_key(intake) -> str:
    return intake.runtime.settings.dev_api_key.get_secret_value()


async def received(bootstrap: str, settings, *, timeout: float = 20.0) -> list[FeedbackReceived]:
    """Every ``feedback.received.v1`` event on the test's topic up to now (in-order per partition).

    Reads to the end offsets taken at the call, so whatever intake acknowledged
    before the call is included and nothing needs a fixed wait."""
    topic = settings.topic(FEEDBACK_RECEIVED.topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    events: list[FeedbackReceived] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: set[int] = set()
        while not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                if loop.time() > deadline:
                    raise AssertionError(f"topic {topic} never appeared")
                await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        end = await consumer.end_offsets(tps)
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            if loop.time() > deadline:
                raise AssertionError("timed out reading the topic to its end")
            batch = await consumer.getmany(timeout_ms=300)
            for messages in batch.values():
                for m in messages:
                    envelope = Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value)
                    events.append(envelope.data)
    finally:
        await consumer.stop()
    return events
