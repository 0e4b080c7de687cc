"""The outbox relay against the real broker and PostgreSQL."""

import asyncio

import asyncpg

from shared.db import create_pool, migrate
from shared.events import FEEDBACK_RECEIVED
from shared.kafka import Publisher, ensure_topics
from shared.outbox import OutboxRelay, enqueue, publish_durably
from tests.integration.shared.helpers import feedback_event, read_all
from tests.support.services import wait_until


async def _pool(database_url, tmp_path):
    conn = await asyncpg.connect(database_url)
    await migrate(conn, schema="relaytest", directory=tmp_path)  # plumbing tables only
    await conn.close()
    return await create_pool(database_url, schema="relaytest")


async def test_relay_publishes_in_order_and_empties_the_outbox(kafka_bootstrap, topic_prefix, database_url, tmp_path):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    pool = await _pool(database_url, tmp_path)
    publisher = Publisher(kafka_bootstrap, client_id="relay-test")
    await publisher.start()
    events = [feedback_event(i) for i in range(300)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [(topic, e) for e in events])
    relays = [OutboxRelay(pool, publisher, schema="relaytest", batch_size=64) for _ in range(2)]
    tasks = [asyncio.create_task(r.run()) for r in relays]  # two replicas: one holds the lock
    try:
        await wait_until(lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox"), timeout=20, what="outbox drained")
        messages = await read_all(kafka_bootstrap, topic, len(events))
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await publisher.stop()
        await pool.close()
    assert [dict(m.headers)["ce_id"].decode() for m in messages] == [e.id for e in events]
    assert sum(r.published_total for r in relays) == len(events)


async def test_publish_durably_falls_back_to_the_outbox_when_kafka_is_down(database_url, tmp_path):
    pool = await _pool(database_url, tmp_path)
    down = Publisher("127.0.0.1:1", client_id="down", send_timeout=0.5)
    await down.start(wait=False)  # never connects
    try:
        where = await publish_durably(down, pool, [("t", feedback_event(1))])
        assert where == "outbox"
        assert await pool.fetchval("SELECT count(*) FROM outbox") == 1
    finally:
        await down.stop()
        await pool.close()


async def test_a_row_kafka_refuses_is_moved_aside_and_the_rows_behind_it_go_out(
    kafka_bootstrap, topic_prefix, database_url, tmp_path
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    pool = await _pool(database_url, tmp_path)
    publisher = Publisher(kafka_bootstrap, client_id="relay-test")
    await publisher.start()
    good = [feedback_event(i) for i in range(40)]
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, [(topic, e) for e in good[:17]])
        # three rows that can never be published: too large for Kafka, an invalid topic, unreadable headers
        await conn.execute("INSERT INTO outbox (topic, key, headers, value) VALUES ($1, NULL, '[]', $2)",
                           topic, b"x" * 2_000_000)
        await conn.execute("INSERT INTO outbox (topic, key, headers, value) VALUES ('not a topic!', NULL, '[]', 'x')")
        await conn.execute("""INSERT INTO outbox (topic, key, headers, value) VALUES ($1, NULL, '{"a": 1}', 'x')""",
                           topic)
        await enqueue(conn, [(topic, e) for e in good[17:]])
    relay = OutboxRelay(pool, publisher, schema="relaytest", batch_size=500)
    task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox"), timeout=30, what="outbox drained")
        messages = await read_all(kafka_bootstrap, topic, len(good))
        letters = await pool.fetch("SELECT topic, reason, error, length(value) AS size FROM outbox_dead_letters ORDER BY id")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop()
        await pool.close()
    assert [dict(m.headers)["ce_id"].decode() for m in messages] == [e.id for e in good]  # in order, none lost
    assert [(r["reason"], r["size"]) for r in letters] == [("permanent", 2_000_000), ("permanent", 1), ("permanent", 1)]
    assert "MessageSizeTooLarge" in letters[0]["error"] and "InvalidTopic" in letters[1]["error"]
    assert letters[1]["topic"] == "not a topic!"
    assert relay.dead_lettered_total == 3 and relay.published_total == len(good)
