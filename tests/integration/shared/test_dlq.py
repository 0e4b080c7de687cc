"""`keymoment dlq` against the real broker and PostgreSQL: dead letters listed without their content,
shown in full, replayed with their event ids (a group that has the event drops it), outbox rows put back."""

from __future__ import annotations

import asyncio
import json
import uuid


from keymoment.dlq import DlqSettings, run
from shared.events import FEEDBACK_RECEIVED, dlq_topic
from shared.kafka import ConsumerRunner, PermanentError, Publisher, ensure_topics
from shared.outbox import OutboxRelay
from tests.integration.shared.helpers import feedback_event, read_all
from tests.support.services import wait_until

SCHEMA = "crashtest"  # the plumbing tests' schema (conftest.py)


async def _dlq(capsys, settings, *argv: str) -> tuple[int, str]:
    capsys.readouterr()
    code = await asyncio.to_thread(run, list(argv), settings)
    return code, capsys.readouterr().out


async def test_list_show_and_replay_dead_letters_with_their_event_ids(
    kafka_bootstrap, topic_prefix, database_url, pool, capsys
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=2)
    publisher = Publisher(kafka_bootstrap, client_id="dlq-test")
    await publisher.start()
    fine, poison, later = feedback_event(1), feedback_event(2, text="王芳 13800138000 投诉"), feedback_event(3)
    broken = {"now": True}

    async def on_feedback(conn, event):
        if event.id == poison.id and broken["now"]:
            raise PermanentError("the location is unknown")
        await conn.execute("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", event.id)

    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        handlers={FEEDBACK_RECEIVED: on_feedback}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000,
    )
    settings = DlqSettings(kafka_bootstrap_servers=kafka_bootstrap, kafka_topic_prefix=topic_prefix,
                           keymoment_env="production")
    task = asyncio.create_task(runner.run())
    try:
        await publisher.publish([(topic, fine), (topic, poison)])
        await publisher.send_raw_batch([(topic, b"k", [("content-type", b"application/json")], b"{}")])  # no event
        await wait_until(lambda: runner.status.dead_lettered == 2, timeout=30, what="two dead letters")

        code, out = await _dlq(capsys, settings, "list", "--json", "--topic", "feedback.received.v1")
        assert code == 0
        listed = [json.loads(line) for line in out.splitlines()]
        assert sorted(x["reason"] for x in listed) == ["invalid", "permanent"]
        [letter] = [x for x in listed if x["reason"] == "permanent"]
        assert letter["event_id"] == poison.id and letter["group"] == runner._group
        assert letter["source"].startswith(f"{topic}:") and "unknown" in letter["error"]
        assert "13800138000" not in out and "王芳" not in out  # a listing never shows what the event carried

        code, out = await _dlq(capsys, settings, "show", poison.id)
        assert code == 0 and "13800138000" in out and json.loads(out)["headers"]["ce_id"] == poison.id
        assert (await _dlq(capsys, settings, "replay"))[0] == 2  # nothing chosen: refused

        broken["now"] = False  # the cause is fixed
        code, out = await _dlq(capsys, settings, "replay", "--id", poison.id)
        assert code == 0 and "1 event(s) replayed" in out
        await wait_until(lambda: pool.fetchval("SELECT count(*) = 1 FROM effects WHERE event_id = $1", poison.id),
                         timeout=30, what="the replayed event applied")

        # replaying everything again: the event already applied is dropped by the consumer (same id), the
        # message that is no event goes back to the .dlq
        await publisher.publish([(topic, later)])
        code, out = await _dlq(capsys, settings, "replay", "--all", "--topic", "feedback.received.v1")
        assert code == 0 and "2 event(s) replayed" in out
        await wait_until(lambda: runner.status.dead_lettered == 3, timeout=30, what="the invalid one dead again")
        await wait_until(lambda: pool.fetchval("SELECT count(*) = 3 FROM effects"), timeout=30, what="3 effects")
        counts = {r["event_id"]: r["n"] for r in await pool.fetch(
            "SELECT event_id, count(*) AS n FROM effects GROUP BY event_id")}
        assert counts == {fine.id: 1, poison.id: 1, later.id: 1}
        replayed = [m for m in await read_all(kafka_bootstrap, topic, 6) if dict(m.headers).get("keymoment_replayed_from")]
        assert sorted(dict(m.headers).get("ce_id", b"").decode() for m in replayed) == sorted(["", poison.id, poison.id])
        assert all(not k.startswith("dlq_") for m in replayed for k, _ in m.headers)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop()


async def test_outbox_rows_set_aside_are_listed_and_put_back(kafka_bootstrap, topic_prefix, database_url, pool, capsys):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic], partitions=1)
    event = feedback_event(1)
    headers = json.dumps([[k, v.decode()] for k, v in event.headers()])
    await pool.execute(
        """INSERT INTO outbox_dead_letters (id, topic, key, headers, value, created_at, reason, error)
           VALUES (7, $1, NULL, $2::jsonb, $3, now(), 'permanent', 'MessageSizeTooLargeError: once too large')""",
        topic, headers, event.value())
    settings = DlqSettings(kafka_bootstrap_servers=kafka_bootstrap, database_url=database_url,
                           keymoment_env="production")
    code, out = await _dlq(capsys, settings, "outbox", "list", "--service", SCHEMA)
    [row] = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and row["id"] == 7 and row["event_id"] == event.id and "MessageSizeTooLarge" in row["error"]

    code, out = await _dlq(capsys, settings, "outbox", "replay", "--service", SCHEMA, "--id", "7")
    assert code == 0 and "1 row(s) back" in out
    publisher = Publisher(kafka_bootstrap, client_id="dlq-test")
    await publisher.start()
    relay = OutboxRelay(pool, publisher, schema=SCHEMA)
    task = asyncio.create_task(relay.run())
    try:
        [message] = await read_all(kafka_bootstrap, topic, 1)
        assert dict(message.headers)["ce_id"].decode() == event.id
        await wait_until(lambda: pool.fetchval("SELECT count(*) = 0 FROM outbox"), timeout=20, what="relayed")
        assert await pool.fetchval("SELECT count(*) FROM outbox_dead_letters") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await publisher.stop()
