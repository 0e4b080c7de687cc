"""Reading what a test's topics hold: partitions assigned directly (no group join delay)."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


async def read_topic(bootstrap: str, topic: str, *, at_least: int, timeout: float = 20.0) -> list:
    """Every message of a topic from the beginning, once at least ``at_least`` arrived
    (and then up to each partition's end, so a duplicate would be seen too)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    messages: list = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: set[int] = set()
        while not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                assert loop.time() < deadline, f"topic {topic} never appeared"
                await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                messages.extend(msgs)
            if len(messages) >= at_least:
                ends = await consumer.end_offsets(tps)
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    return messages
            assert loop.time() < deadline, f"only {len(messages)} of {at_least} messages on {topic}"
    finally:
        await consumer.stop()
