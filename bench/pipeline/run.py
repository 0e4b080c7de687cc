"""Foundation benchmark: what the shared plumbing costs against bare aiokafka.

Starts its own Tansu broker and embedded PostgreSQL (nothing else running),
then measures, each against a reference in the same run:

- publish: ``Publisher.publish`` of CloudEvents envelopes (``acks=all``)
  against a bare ``AIOKafkaProducer`` sending the same bytes;
- consume: ``ConsumerRunner`` (batch transaction, dedupe in
  ``processed_events``, offsets committed after the database commit) with a
  handler inserting one row per event, against a bare consumer loop doing the
  same inserts in one transaction per batch and committing offsets (correct
  at-least-once, but no dedupe, DLQ or retries);
- outbox: events written to the outbox in transactions of 100 and relayed to
  Kafka, against publishing them directly.

    python -m bench.pipeline.run [-n 20000] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.common import header, work_dir
from keymoment.devstack.stack import Stack
from shared.contracts import FeedbackReceived
from shared.db import create_pool, migrate
from shared.events import FEEDBACK_RECEIVED, Envelope, event_source
from shared.kafka import ConsumerRunner, Publisher, ensure_topics
from shared.outbox import OutboxRelay, enqueue

CHUNK = 500
SINK_MIGRATION = "CREATE TABLE sink (id text PRIMARY KEY, location text);\n"


def events(n: int) -> list[Envelope]:
    out = []
    now = datetime.now(UTC)
    for i in range(n):
        fid = str(uuid.uuid4())
        data = FeedbackReceived(
            id=fid, channel="kiosk", rating={"scale": "mot", "value": (i % 7) - 3}, location=f"store-{i % 50}",
            touchpoint="checkout", text="排队太久了，收银员态度还可以" if i % 2 else "Quick checkout, friendly staff.",
            received_at=now, source="bench",
        )
        out.append(Envelope.new(FEEDBACK_RECEIVED, data, source=event_source("intake"), key=f"place:store-{i % 50}", id=fid))
    return out


def rate(n: int, seconds: float) -> str:
    return f"{n / seconds:,.0f}/s"


async def bare_produce(bootstrap: str, topic: str, evs: list[Envelope]) -> float:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=1_048_576)
    await producer.start()
    try:
        raw = [(e.key_bytes(), e.headers(), e.value()) for e in evs]  # serialisation outside the clock
        t0 = time.perf_counter()
        for i in range(0, len(raw), CHUNK):
            futures = [await producer.send(topic, value=v, key=k, headers=h) for k, h, v in raw[i : i + CHUNK]]
            await asyncio.gather(*futures)
        return time.perf_counter() - t0
    finally:
        await producer.stop()


async def plumbing_produce(publisher: Publisher, topic: str, evs: list[Envelope]) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(evs), CHUNK):
        await publisher.publish([(topic, e) for e in evs[i : i + CHUNK]])
    return time.perf_counter() - t0


async def insert_sink(conn: asyncpg.Connection, event: Envelope) -> None:
    await conn.execute(
        "INSERT INTO sink (id, location) VALUES ($1, $2) ON CONFLICT DO NOTHING", event.id, event.data.location
    )


async def bare_consume(bootstrap: str, topic: str, pool: asyncpg.Pool, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"bare-{uuid.uuid4().hex[:6]}",
        enable_auto_commit=False, auto_offset_reset="earliest", session_timeout_ms=3000, max_poll_records=500,
    )
    await consumer.start()
    seen = 0
    t0 = None
    try:
        while seen < n:
            batch = await consumer.getmany(timeout_ms=500, max_records=500)
            if not batch:
                continue
            t0 = t0 or time.perf_counter()  # from the first message: group join time excluded
            async with pool.acquire() as conn, conn.transaction():
                for msgs in batch.values():
                    for m in msgs:
                        ev = Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value)
                        await insert_sink(conn, ev)
                        seen += 1
            await consumer.commit()
        return time.perf_counter() - t0
    finally:
        await consumer.stop()


async def runner_consume(bootstrap: str, topic_prefix: str, pool, publisher, n: int) -> float:
    runner = ConsumerRunner(
        bootstrap_servers=bootstrap, group_id=f"runner-{uuid.uuid4().hex[:6]}",
        handlers={FEEDBACK_RECEIVED: insert_sink}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3000,
    )
    task = asyncio.create_task(runner.run())
    t0 = None
    try:
        while runner.status.processed < n:
            if t0 is None and runner.status.processed:
                t0 = time.perf_counter()
            await asyncio.sleep(0.005)
        return time.perf_counter() - (t0 or time.perf_counter())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def outbox_relay(pool, publisher, topic: str, evs: list[Envelope]) -> float:
    relay = OutboxRelay(pool, publisher, schema="bench", poll_interval=0.05)
    t0 = time.perf_counter()
    task = asyncio.create_task(relay.run())
    try:
        for i in range(0, len(evs), 100):
            async with pool.acquire() as conn, conn.transaction():
                await enqueue(conn, [(topic, e) for e in evs[i : i + 100]])
            relay.wake()
        while relay.published_total < len(evs):
            await asyncio.sleep(0.005)
        return time.perf_counter() - t0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def measure(n: int, bootstrap: str, dsn: str, work: Path) -> list[str]:
    migrations = work / "migrations"
    migrations.mkdir()
    (migrations / "0001_create_sink.sql").write_text(SINK_MIGRATION)
    conn = await asyncpg.connect(dsn)
    await migrate(conn, schema="bench", directory=migrations)
    await conn.close()
    pool = await create_pool(dsn, schema="bench", min_size=2, max_size=4)
    publisher = Publisher(bootstrap, client_id="bench")
    await publisher.start()
    prefix = "bench."
    topic = prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(bootstrap, [topic, "bench.bare", "bench.outbox"])
    evs = events(n)
    try:
        t_bare = await bare_produce(bootstrap, "bench.bare", evs)
        t_pub = await plumbing_produce(publisher, topic, evs)
        t_bare_c = await bare_consume(bootstrap, "bench.bare", pool, n)
        await pool.execute("TRUNCATE sink")
        t_runner = await runner_consume(bootstrap, prefix, pool, publisher, n)
        stored = await pool.fetchval("SELECT count(*) FROM sink")
        t_outbox = await outbox_relay(pool, publisher, "bench.outbox", events(n))
    finally:
        await publisher.stop()
        await pool.close()
    rows = [
        "| path | plumbing | reference (same run) | ratio |",
        "|---|---:|---:|---:|",
        f"| publish, `Publisher.publish` (envelope encoding included) vs bare `AIOKafkaProducer` | "
        f"{rate(n, t_pub)} | {rate(n, t_bare)} | **{t_bare / t_pub:.2f}** |",
        f"| consume into PostgreSQL, `ConsumerRunner` vs bare consumer loop | {rate(n, t_runner)} | "
        f"{rate(n, t_bare_c)} | **{t_bare_c / t_runner:.2f}** |",
        f"| outbox: commit 100 per transaction + relay to Kafka vs direct publish | {rate(n, t_outbox)} | "
        f"{rate(n, t_pub)} | **{t_pub / t_outbox:.2f}** |",
        "",
        f"{n:,} events of ~{len(evs[0].value())} bytes each, 3 partitions; the runner stored {stored:,} rows "
        "(exactly once). Ratio = plumbing throughput / reference throughput.",
    ]
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Shared plumbing vs bare aiokafka")
    parser.add_argument("-n", type=int, default=20_000, help="events per measurement")
    parser.add_argument("--write", action="store_true", help="store the Markdown in bench/pipeline/RESULTS.md")
    args = parser.parse_args(argv)
    with work_dir("pipeline") as work, Stack(work, database=None) as stack:
        rows = asyncio.run(measure(args.n, stack.bootstrap_servers, stack.dsn(), work))
    out = header("Foundation: shared Kafka/PostgreSQL plumbing vs bare aiokafka") + "\n" + "\n".join(rows) + "\n"
    if args.write:
        (Path(__file__).parent / "RESULTS.md").write_text(out, encoding="utf-8")
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
