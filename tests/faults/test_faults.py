"""Faults with real components (RELIABILITY.md records what each proves and its figures). They share one
system and run in this order; each ends with ``System.settle``: every accepted feedback reflected in
reporting once, every negative with exactly one alert and one first mail, nothing in a ``.dlq`` but the
poison. The broker goes last: Tansu keeps topics in memory, so its restart loses what it held."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from keymoment.asyncapi import endpoints, runtimes
from shared.contracts import FeedbackScored, SurveyRequested
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_RECEIVED, FEEDBACK_SCORED, SURVEY_REQUESTED, Envelope
from shared.kafka import Publisher
from tests.faults.conftest import POISON_HEADER, REPLICAS, Posted, System
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


def _scored(feedback_id: str) -> Envelope:
    from datetime import UTC, datetime

    return Envelope.new(FEEDBACK_SCORED, FeedbackScored(
        feedback_id=feedback_id, channel="kiosk", location="poison-0", touchpoint="checkout",
        received_at=datetime.now(UTC), mot=-3, negative=True, confidence=1.0), source="/keymoment/alerts", key=feedback_id)


def _requested() -> Envelope:
    from datetime import UTC, datetime

    return Envelope.new(SURVEY_REQUESTED, SurveyRequested.model_validate({
        "request_id": uuid.uuid4().hex, "alert_id": "a-poison", "customer": {"email": "poison@example.com"},
        "language": "en", "requested_at": datetime.now(UTC)}), source="/keymoment/alerts", key="a-poison")


async def test_poison_events_on_every_consumed_topic_are_dead_lettered_and_the_rest_flows(system: System):
    """On each topic a consumer reads: a message that is no event, and a valid event of a type that does not
    belong there (a feedback.scored.v1 on feedback.received.v1 must not be counted as received)."""
    publisher = Publisher(system.stack.bootstrap_servers, client_id="faults")
    await publisher.start()
    wrong_type = {FEEDBACK_RECEIVED.topic: _scored(f"poison-{uuid.uuid4().hex[:8]}"),
                  FEEDBACK_SCORED.topic: _requested(), ALERT_RAISED.topic: _requested(),
                  ALERT_UPDATED.topic: _scored(f"poison-{uuid.uuid4().hex[:8]}"), SURVEY_REQUESTED.topic: _scored("x")}
    readers = endpoints(runtimes())  # the consumer groups (services) reading each topic
    groups = {t: len(readers[t]["receive"]) for t in (FEEDBACK_RECEIVED.topic, FEEDBACK_SCORED.topic,
                                                      ALERT_RAISED.topic, ALERT_UPDATED.topic, SURVEY_REQUESTED.topic)}
    assert groups[FEEDBACK_RECEIVED.topic] == 3, groups  # alerts, reporting and survey (its triggers)
    started = time.monotonic()
    try:
        for topic, event in wrong_type.items():
            marks = [f"{topic}:garbage", f"{topic}:wrong-type"]
            system.poison.update(marks)
            await publisher.send_raw_batch([
                (topic, b"poison", [("ce_id", uuid.uuid4().hex.encode()), ("ce_source", b"/faults"),
                                    ("ce_type", f"com.keymoment.{topic.removesuffix('.v1')}.v1".encode()),
                                    ("ce_specversion", b"1.0"), (POISON_HEADER, marks[0].encode())],
                 b"\x00 not json"),
                (topic, event.key_bytes(), [*event.headers(), (POISON_HEADER, marks[1].encode())], event.value()),
            ])
        posted = await system.post("poison", 60)

        async def all_letters() -> bool:
            counts: dict[str, int] = {}
            for letter in await system.dead_letters():
                topic = dict(letter.headers)["dlq_source_topic"].decode()
                counts[topic] = counts.get(topic, 0) + 1
            return all(counts.get(t, 0) >= 2 * n for t, n in groups.items())

        await wait_until(all_letters, timeout=90, interval=0.5, what="every poison dead-lettered by every group")
    finally:
        await publisher.stop()
    figures = await system.settle("poison", posted, since=started)
    letters = await system.dead_letters()
    assert len(letters) == 2 * sum(groups.values()), [dict(m.headers) for m in letters]
    reasons = sorted(dict(m.headers)["dlq_reason"].decode() for m in letters)
    assert reasons == sorted(["invalid"] * sum(groups.values()) + ["unexpected_type"] * sum(groups.values()))
    scored_id = wrong_type[FEEDBACK_RECEIVED.topic].data.feedback_id
    assert await system.db.fetchval("SELECT count(*) FROM reporting.feedback_facts WHERE feedback_id = $1",
                                    scored_id) == 0  # the scored event on the received topic was not counted
    figures["dead_letters"] = len(letters)


async def test_consumers_killed_mid_batch_lose_and_double_nothing(system: System):
    """Both replicas of alerts and of reporting SIGKILLed while a burst is being processed, then started."""
    task = asyncio.create_task(system.post("sigkill", 600, concurrency=32))
    await wait_until(lambda: system.db.fetchval(
        "SELECT count(*) >= 40 FROM alerts.alert_feedback WHERE alert_id IN "
        "(SELECT alert_id FROM alerts.alerts WHERE location LIKE 'sigkill-%')"), timeout=60, interval=0.1,
        what="alerts part-way through the burst")
    killed = [*REPLICAS["alerts"], *REPLICAS["reporting"]]
    system.kill(*killed)
    posted = await task
    reflected_at_kill = await system.reflected(posted.ids)
    assert reflected_at_kill < len(posted.ids), "the kill must land mid-way"
    started = time.monotonic()
    await asyncio.to_thread(system.start, *killed)
    figures = await system.settle("sigkill", posted, since=started)
    figures["reflected_when_killed"] = reflected_at_kill


async def test_one_of_two_replicas_killed_the_other_takes_over(system: System):
    """One replica of each consumer SIGKILLed under load and left down: the group moves its partitions."""
    task = asyncio.create_task(system.post("replica", 600, concurrency=32))
    await wait_until(lambda: system.db.fetchval(
        "SELECT count(*) >= 60 FROM reporting.feedback_facts WHERE location LIKE 'replica-%'"),
        timeout=60, interval=0.1, what="reporting part-way through the burst")
    down = [replicas[1] for replicas in REPLICAS.values()]
    system.kill(*down)
    started = time.monotonic()
    posted = await task
    await system.settle("replica", posted, since=started)
    await asyncio.to_thread(system.start, *down)  # back for the next scenarios


async def test_postgresql_stopped_for_20_seconds_under_load(system: System):
    """Intake keeps accepting (its hot path needs Kafka only) while PostgreSQL is down for 20 s; the
    consumers retry (never dead-letter) and catch up; their readiness says `database`, intake's does not."""
    posted = Posted()
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal posted
        i = 0
        while not stop.is_set():
            posted += await system.post("pg", 10, round_=i)
            i += 1
            await asyncio.sleep(0.3)

    task = asyncio.create_task(load())
    await asyncio.sleep(3)
    await asyncio.to_thread(system.stack.stop_component, "postgres")
    outage = time.monotonic()
    await wait_until(lambda: _status(system, "reporting", 503), timeout=30, what="reporting unready")
    status, body = await system.readyz("reporting")
    assert body["reasons"] == ["database"], body
    assert (await system.readyz("intake")) == (200, {"status": "ok", "path": "kafka", "degraded": ["database"]})
    await asyncio.sleep(max(0.0, 20 - (time.monotonic() - outage)))
    await asyncio.to_thread(system.stack.start_component, "postgres")
    started = time.monotonic()
    await asyncio.sleep(3)
    stop.set()
    await task
    assert posted.refused == 0  # not one refusal: Kafka took every post
    figures = await system.settle("pg", posted, since=started, timeout=180)
    figures["outage_s"] = round(started - outage, 1)


async def test_smtp_down_longer_than_the_old_give_up_time_then_up(system: System):
    """Alert mail stays pending through an SMTP outage past the old 12-attempt limit and goes out after."""
    await asyncio.to_thread(system.stack.stop_component, "smtp")
    outage = time.monotonic()
    posted = await system.post("smtp", 30, negative_every=1)  # every one negative: 30 alerts, 30 mails
    await wait_until(lambda: system.db.fetchval(
        """SELECT count(*) = $1 AND min(attempts) > 12 FROM alerts.mail_queue
           WHERE purpose = 'alert_notification' AND state = 'pending' AND ref IN (
               SELECT notification_id FROM alerts.notifications WHERE alert_id IN (
                   SELECT alert_id FROM alerts.alert_feedback WHERE feedback_id = ANY($2)))""",
        len(posted.negatives), sorted(posted.negatives)), timeout=90, interval=0.5,
        what="every alert mail pending after more than 12 attempts")
    assert await system.db.fetchval("SELECT count(*) FROM alerts.mail_queue WHERE state = 'failed'") == 0
    await asyncio.to_thread(system.stack.start_component, "smtp")
    started = time.monotonic()
    figures = await system.settle("smtp", posted, since=started)
    figures["outage_s"] = round(started - outage, 1)


async def test_kafka_down_while_intake_takes_posts(system: System):
    """Everything before is settled (the broker's restart loses what it holds). Intake answers 202 from its
    outbox and says so in /readyz; the consumers stay ready; after the broker is back all arrives once."""
    await system.assert_only_poison_in_dlq()
    await asyncio.to_thread(system.stack.stop_component, "kafka")
    outage = time.monotonic()
    await wait_until(lambda: _path(system, "outbox"), timeout=30, what="intake on the outbox path")
    posted = await system.post("kafka", 300)
    assert posted.refused == 0 and len(posted.ids) == 300
    assert await _path(system, "outbox")
    for name in ("alerts", "reporting", "survey"):
        status, body = await system.readyz(name)
        assert status == 200 and "kafka" in body.get("degraded", []), (name, body)
    pending = await system.db.fetchval("SELECT count(*) FROM intake.outbox")
    await asyncio.to_thread(system.stack.start_component, "kafka")
    started = time.monotonic()
    figures = await system.settle("kafka", posted, since=started, timeout=180)
    figures["outage_s"] = round(started - outage, 1)
    figures["outbox_rows"] = pending
    await wait_until(lambda: _path(system, "kafka"), timeout=30, what="intake back on the kafka path")


async def _status(system: System, name: str, status: int) -> bool:
    try:
        return (await system.readyz(name))[0] == status
    except Exception:  # noqa: BLE001 - not answering yet
        return False


async def _path(system: System, path: str) -> bool:
    try:
        return (await system.readyz("intake"))[1].get("path") == path
    except Exception:  # noqa: BLE001
        return False

