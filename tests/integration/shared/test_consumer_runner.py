"""The consumer runner against the real broker and PostgreSQL: dead letters,
retries, and a consumer killed mid-batch that must not duplicate effects."""

import asyncio
import json
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import FEEDBACK_RECEIVED, dlq_topic
from shared.kafka import ConsumerRunner, PermanentError, Publisher, ensure_topics
from tests.integration.shared.helpers import feedback_event, read_all
from tests.support.services import wait_until

HERE = Path(__file__).parent
SCHEMA = "crashtest"


@pytest.fixture
async def publisher(kafka_bootstrap):
    publisher = Publisher(kafka_bootstrap, client_id="test")
    await publisher.start()
    yield publisher
    await publisher.stop()


async def run_until(runner: ConsumerRunner, predicate, what: str) -> None:
    task = asyncio.create_task(runner.run())
    try:
        await wait_until(predicate, timeout=30, what=what)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_invalid_messages_are_dead_lettered_with_their_origin(kafka_bootstrap, topic_prefix, pool, publisher):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=1)
    good = feedback_event(1)
    bad_payload = feedback_event(2)
    raw_bad_payload = [(k, v) for k, v in bad_payload.headers()]
    await publisher.publish([(topic, good)])
    await publisher.send_raw_batch(
        [
            (topic, b"k", raw_bad_payload, b'{"channel": "fax"}'),  # valid envelope, invalid data
            (topic, b"k", [("content-type", b"application/json")], b"{}"),  # no CloudEvents headers
            (topic, b"k", raw_bad_payload, b"\xff not json"),
        ]
    )

    async def on_feedback(conn, event):
        await conn.execute("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", event.id)

    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        handlers={FEEDBACK_RECEIVED: on_feedback}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000,
    )
    await run_until(runner, lambda: runner.status.dead_lettered == 3, "three dead letters")

    assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")] == [good.id]
    letters = await read_all(kafka_bootstrap, dlq_topic(topic), 3)
    assert len(letters) == 3
    for letter in letters:
        headers = {k: v.decode() for k, v in letter.headers}
        assert headers["dlq_source_topic"] == topic
        assert headers["dlq_source_partition"] == "0"
        assert headers["dlq_consumer_group"] == runner._group
        assert headers["dlq_error"]
    offsets = sorted(int(dict(m.headers)["dlq_source_offset"]) for m in letters)
    assert offsets == [1, 2, 3]  # offset 0 was the good event
    errors = " | ".join(dict(m.headers)["dlq_error"].decode() for m in letters)
    assert "missing CloudEvents headers" in errors and "invalid com.keymoment.feedback.received.v1 data" in errors


async def test_transient_failures_are_retried_and_permanent_ones_dead_lettered(
    kafka_bootstrap, topic_prefix, pool, publisher
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    flaky, poison, fine = feedback_event(1), feedback_event(2), feedback_event(3)
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=1)
    await publisher.publish([(topic, flaky), (topic, poison), (topic, fine)])
    failures = {"left": 3}

    async def on_feedback(conn, event):
        if event.id == flaky.id and failures["left"] > 0:
            failures["left"] -= 1
            raise ConnectionResetError("database connection dropped")
        if event.id == poison.id:
            raise PermanentError("customer record refers to an unknown location")
        await conn.execute("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", event.id)

    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        handlers={FEEDBACK_RECEIVED: on_feedback}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000,
    )

    async def done() -> bool:
        return await pool.fetchval("SELECT count(*) FROM effects") == 2 and runner.status.dead_lettered == 1

    await run_until(runner, done, "two effects and one dead letter")
    ids = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")}
    assert ids == {flaky.id, fine.id}
    assert failures["left"] == 0  # the transient failure was retried, not dead-lettered
    [letter] = await read_all(kafka_bootstrap, dlq_topic(topic), 1)
    assert dict(letter.headers)["ce_id"].decode() == poison.id
    assert "unknown location" in dict(letter.headers)["dlq_error"].decode()


async def test_batch_handler_gets_a_batch_at_once_and_a_failed_batch_is_bisected(
    kafka_bootstrap, topic_prefix, pool, publisher
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    events = [feedback_event(i) for i in range(6)]
    poison = events[3]
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=1)
    await publisher.publish([(topic, e) for e in events] + [(topic, events[0])])  # events[0] delivered twice
    calls: list[list[str]] = []

    async def on_feedback_batch(conn, batch):
        calls.append([e.id for e in batch])
        if any(e.id == poison.id for e in batch):
            raise PermanentError("unknown location")  # the batch statement fails for the poison event in it
        await conn.executemany("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", [(e.id,) for e in batch])

    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        handlers={}, batch_handlers={FEEDBACK_RECEIVED: on_feedback_batch}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000,
    )

    async def done() -> bool:
        return await pool.fetchval("SELECT count(*) FROM effects") == 5 and runner.status.dead_lettered == 1

    await run_until(runner, done, "five effects and one dead letter")
    effects = [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects ORDER BY at")]
    assert sorted(effects) == sorted(e.id for e in events if e is not poison)  # the duplicate counted once
    # the first call took the whole batch (one of the deliveries of events[0]), in offset order
    assert calls[0] == [e.id for e in events]
    # after it failed it was bisected (halves, not one event per call) until the poison event failed alone
    assert [poison.id] in calls[1:]
    assert any(len(c) > 1 for c in calls[1:]), calls
    assert len(calls) <= 1 + 2 * 3, calls  # log2 of the batch, not one call per event
    applied = [i for c in calls[1:] if poison.id not in c for i in c]
    assert sorted(applied) == sorted({e.id for e in events if e is not poison}), calls  # each half applied once
    [letter] = await read_all(kafka_bootstrap, dlq_topic(topic), 1)
    assert dict(letter.headers)["ce_id"].decode() == poison.id


async def test_events_nobody_wants_now_are_passed_over_unread_and_committed(
    kafka_bootstrap, topic_prefix, pool, publisher
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=1)
    early = [feedback_event(i) for i in range(5)]
    await publisher.publish([(topic, e) for e in early])
    await publisher.send_raw_batch([(topic, b"k", [("ce_type", FEEDBACK_RECEIVED.type.encode())], b"not json")])
    wanted = {"now": False}
    asked: list[object] = []

    async def is_wanted(p) -> bool:
        asked.append(p)
        return wanted["now"]

    async def on_feedback_batch(conn, batch):
        await conn.executemany("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", [(e.id,) for e in batch])

    group = f"g-{uuid.uuid4().hex[:6]}"

    def runner() -> ConsumerRunner:
        return ConsumerRunner(
            bootstrap_servers=kafka_bootstrap, group_id=group, handlers={},
            batch_handlers={FEEDBACK_RECEIVED: on_feedback_batch}, pool=pool, publisher=publisher,
            topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000, wanted={FEEDBACK_RECEIVED: is_wanted},
        )

    async def committed() -> int | None:
        admin_consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        await admin_consumer.start()
        try:
            return await admin_consumer.committed(TopicPartition(topic, 0))
        finally:
            await admin_consumer.stop()

    first = runner()
    await run_until(first, lambda: _equals(committed(), 6), "six offsets committed unread")
    assert asked and all(p is pool for p in asked)  # asked with the runner's pool
    assert first.status.processed == 0 and first.status.dead_lettered == 0  # not even the invalid one was read
    assert await pool.fetchval("SELECT count(*) FROM effects") == 0
    assert await pool.fetchval("SELECT count(*) FROM processed_events") == 0

    wanted["now"] = True
    late = [feedback_event(i) for i in range(5, 8)]
    await publisher.publish([(topic, e) for e in late])
    second = runner()
    await run_until(second, lambda: pool.fetchval("SELECT count(*) = 3 FROM effects"), "the wanted events handled")
    assert {r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")} == {e.id for e in late}


async def test_a_topic_nothing_is_wanted_from_is_fetched_about_once_a_second_and_nothing_skipped(
    kafka_bootstrap, topic_prefix, pool, publisher
):
    """While every event is passed over and the reader has caught up, the topic rests a second
    between fetches (one wanted check and one offset commit each) instead of being fetched as fast
    as events come; once something is wanted, the next events are handled: none was skipped unread."""
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=1)
    wanted = {"now": False}
    asked: list[float] = []

    async def is_wanted(_) -> bool:
        asked.append(asyncio.get_running_loop().time())
        return wanted["now"]

    async def on_feedback_batch(conn, batch):
        await conn.executemany("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", [(e.id,) for e in batch])

    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}", handlers={},
        batch_handlers={FEEDBACK_RECEIVED: on_feedback_batch}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000, wanted={FEEDBACK_RECEIVED: is_wanted},
    )
    early = [feedback_event(i) for i in range(31)]
    task = asyncio.create_task(runner.run())
    try:
        await publisher.publish([(topic, early[0])])
        await wait_until(lambda: bool(asked), timeout=30, what="the first fetch")
        start = len(asked)
        for event in early[1:]:  # 3 s of events, one every 100 ms
            await publisher.publish([(topic, event)])
            await asyncio.sleep(0.1)
        fetched_while_idle = len(asked) - start
        wanted["now"] = True
        late = [feedback_event(i) for i in range(31, 34)]
        await publisher.publish([(topic, e) for e in late])
        await wait_until(lambda: pool.fetchval("SELECT count(*) > 0 FROM effects"), timeout=10, what="events handled")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert 2 <= fetched_while_idle <= 5, f"{fetched_while_idle} fetches in 3 s of events nobody wanted"
    handled = {r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")}
    # the events that came while nothing was wanted were passed over (a fetch then was at most 1.5 s ago),
    # those after it all handled
    assert {e.id for e in late} <= handled
    assert handled <= {e.id for e in [*early, *late]}


async def _equals(value, expected) -> bool:
    return await value == expected


def test_an_event_type_cannot_have_both_kinds_of_handler(pool, publisher):
    async def one(conn, event): ...
    async def many(conn, events): ...

    with pytest.raises(ValueError, match="both a handler and a batch handler"):
        ConsumerRunner(bootstrap_servers="127.0.0.1:1", group_id="g", handlers={FEEDBACK_RECEIVED: one},
                       batch_handlers={FEEDBACK_RECEIVED: many}, pool=pool, publisher=publisher)


def _child(bootstrap, dsn, prefix, group, mode) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "consumer_child.py"), bootstrap, dsn, prefix, group, mode],
        stdout=subprocess.PIPE, text=True, cwd=HERE.parents[2],
        env={"PYTHONPATH": str(HERE.parents[2]), "PATH": "/usr/bin:/bin"},
    )


@pytest.mark.parametrize("how", ["sigkill-mid-batch", "crash-after-db-commit"])
async def test_killed_consumer_reprocesses_uncommitted_without_duplicate_effects(
    how, kafka_bootstrap, topic_prefix, database_url, pool, publisher
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=2)
    events = [feedback_event(i) for i in range(400)]
    await publisher.publish([(topic, e) for e in events])
    group = f"g-{uuid.uuid4().hex[:6]}"

    first = _child(kafka_bootstrap, database_url, topic_prefix, group,
                   "crash-after-db-commit" if how == "crash-after-db-commit" else "run")
    try:
        if how == "sigkill-mid-batch":
            await wait_until(
                lambda: pool.fetchval("SELECT count(*) >= 120 FROM effects"), timeout=30, what="first consumer halfway"
            )
            first.send_signal(signal.SIGKILL)
        await asyncio.to_thread(first.wait, 30)
    finally:
        if first.poll() is None:
            first.kill()
    effects_before = await pool.fetchval("SELECT count(*) FROM effects")
    assert 0 < effects_before < len(events), "the first consumer must die part-way"

    second = _child(kafka_bootstrap, database_url, topic_prefix, group, "run")
    try:
        await wait_until(
            lambda: pool.fetchval("SELECT count(DISTINCT event_id) = $1 FROM effects", len(events)),
            timeout=60, what="all events applied",
        )
        second.send_signal(signal.SIGTERM)
        out, _ = await asyncio.to_thread(second.communicate, timeout=30)
    finally:
        if second.poll() is None:
            second.kill()
    received = json.loads(out.strip().splitlines()[-1])["received"]

    rows = await pool.fetch("SELECT event_id, count(*) AS n FROM effects GROUP BY event_id")
    assert len(rows) == len(events)
    assert {r["event_id"] for r in rows} == {e.id for e in events}
    assert max(r["n"] for r in rows) == 1, "an effect was applied twice"
    # The restarted consumer got everything whose offset the dead one had not committed:
    # after a crash between the DB commit and the offset commit that includes events
    # already applied (deduped, not re-applied); a SIGKILL mid-transaction rolled back.
    remaining = len(events) - effects_before
    if how == "crash-after-db-commit":
        assert received > remaining
    else:
        assert received >= remaining


async def test_an_event_of_a_type_not_expected_on_its_topic_is_dead_lettered_not_applied(
    kafka_bootstrap, topic_prefix, pool, publisher
):
    """A valid feedback.scored.v1 published on feedback.received.v1 goes to the .dlq, even though this
    consumer handles feedback.scored.v1 on its own topic."""
    from prometheus_client import CollectorRegistry

    from shared.contracts import FeedbackScored
    from shared.events import FEEDBACK_SCORED, Envelope
    from shared.metrics import ConsumerMetrics

    received_topic = topic_prefix + FEEDBACK_RECEIVED.topic
    scored_topic = topic_prefix + FEEDBACK_SCORED.topic
    await ensure_topics(kafka_bootstrap, [received_topic, scored_topic, dlq_topic(received_topic)], partitions=1)
    good = feedback_event(1)
    scored = Envelope.new(FEEDBACK_SCORED, FeedbackScored(
        feedback_id="f-1", channel="web", received_at=good.data.received_at, mot=-3, negative=True, confidence=1.0,
    ), source="/keymoment/alerts", key="f-1")
    await publisher.publish([(received_topic, scored), (received_topic, good)])

    async def on_feedback(conn, event):
        await conn.execute("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", event.id)

    metrics = ConsumerMetrics(CollectorRegistry())
    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        handlers={FEEDBACK_RECEIVED: on_feedback, FEEDBACK_SCORED: on_feedback}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000, metrics=metrics,
    )
    assert metrics.dead_letters.labels(runner._group, received_topic, "unexpected_type")._value.get() == 0
    await run_until(runner, lambda: runner.status.dead_lettered == 1 and runner.status.processed == 1, "a letter")
    assert [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")] == [good.id]
    [letter] = await read_all(kafka_bootstrap, dlq_topic(received_topic), 1)
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["ce_id"] == scored.id and headers["dlq_reason"] == "unexpected_type"
    assert metrics.dead_letters.labels(runner._group, received_topic, "unexpected_type")._value.get() == 1


async def test_unexpected_errors_are_tried_a_bounded_number_of_times_transient_ones_do_not_count(
    kafka_bootstrap, topic_prefix, pool, publisher
):
    topic = topic_prefix + FEEDBACK_RECEIVED.topic
    await ensure_topics(kafka_bootstrap, [topic, dlq_topic(topic)], partitions=1)
    events = [feedback_event(i) for i in range(5)]
    buggy = events[2]
    await publisher.publish([(topic, e) for e in events])
    tries = {"buggy": 0, "transient": 4}

    async def on_feedback(conn, event):
        if event.id == buggy.id:
            if tries["transient"] > 0:  # the database drops first: not counted against the event
                tries["transient"] -= 1
                raise asyncpg.exceptions.AdminShutdownError("terminating connection due to administrator command")
            tries["buggy"] += 1
            raise KeyError("severity")  # a bug this event's data triggers
        await conn.execute("INSERT INTO effects (event_id, pid) VALUES ($1, 0)", event.id)

    runner = ConsumerRunner(
        bootstrap_servers=kafka_bootstrap, group_id=f"g-{uuid.uuid4().hex[:6]}",
        handlers={FEEDBACK_RECEIVED: on_feedback}, pool=pool, publisher=publisher,
        topic_name=lambda t: topic_prefix + t, session_timeout_ms=3_000, unexpected_error_attempts=3,
        max_backoff=0.2,
    )

    async def done() -> bool:
        return runner.status.dead_lettered == 1 and await pool.fetchval("SELECT count(*) FROM effects") == 4

    await run_until(runner, done, "four effects and the buggy event dead-lettered")
    # the whole batch and its right half [2, 3, 4] failed once each while bisecting, then 3 tries alone
    assert tries == {"buggy": 2 + 3, "transient": 0}
    [letter] = await read_all(kafka_bootstrap, dlq_topic(topic), 1)
    headers = {k: v.decode() for k, v in letter.headers}
    assert headers["ce_id"] == buggy.id and headers["dlq_reason"] == "unexpected"
    assert "KeyError" in headers["dlq_error"]
