"""A consumed batch's negative feedback is raised and grouped together (held writes, one
flush): the outcome must be what one-by-one processing gives, on a real PostgreSQL."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from prometheus_client import CollectorRegistry

from services.alerts import handlers
from services.alerts.api.deps import bearer_auth
from services.alerts.context import Context
from services.alerts.metrics import AlertsMetrics
from services.alerts.routing import Router
from services.alerts.scoring import Scorer
from services.alerts.settings import AlertsSettings
from shared.clock import ManualClock
from shared.db import create_pool, migrate
from shared.events import ALERT_RAISED, ALERT_UPDATED
from shared.signing import Signer
from tests.integration.alerts.support import feedback

pytestmark = pytest.mark.integration

MIGRATIONS = Path(handlers.__file__).parent / "migrations"


@pytest.fixture
async def batch_ctx(service_env):
    s = AlertsSettings(**service_env, smtp_host="127.0.0.1", smtp_port=25, public_base_url="http://alerts.test")
    pool = await create_pool(s.dsn(), schema="alerts")
    async with pool.acquire() as conn:
        await migrate(conn, schema="alerts", directory=MIGRATIONS, components=AlertsSettings.migration_components())
    published: list = []

    async def publish(events):
        published.extend(events)

    scorer = Scorer.load()
    router = Router.load(s.routes_path(), base_sla=s.sla_seconds(), alert_threshold=scorer.alert_threshold)
    signer, clock = Signer(b"k" * 32), ManualClock()
    ctx = Context(settings=s, scorer=scorer, router=router, clock=clock, signer=signer,
                  metrics=AlertsMetrics(CollectorRegistry()), publish=publish,
                  auth=bearer_auth(admin_token=s.admin_token, signer=signer, router=router, clock=clock,
                                   pool=lambda: pool))
    try:
        yield pool, ctx, published
    finally:
        await pool.close()


async def _consume(pool, ctx, events) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await handlers.on_feedback_received(ctx, conn, events)


async def test_one_batch_raises_and_groups_as_one_by_one_would(batch_ctx):
    pool, ctx, published = batch_ctx
    customer = {"id": "c-batch", "email": "wang.wu@example.cn"}
    first = feedback(channel="web", text="排队等了四十分钟，没人管。", rating={"scale": "csat", "value": 2},
                     location="store-7", customer=customer)
    worse = feedback(channel="web", text="Rude staff, I am cancelling my card.", location="store-8", customer=customer)
    again = feedback(rating={"scale": "mot", "value": -1}, location="store-9", customer=customer)
    gate_a = feedback(rating={"scale": "mot", "value": -2}, location="airport-X", touchpoint="gate 9")
    gate_b = feedback(rating={"scale": "mot", "value": -1}, location="airport-X", touchpoint="gate 9")
    happy = feedback(rating={"scale": "mot", "value": 3}, location="airport-X", touchpoint="gate 9")
    twice = feedback(feedback_id=gate_b.data.id, rating={"scale": "mot", "value": -1}, location="airport-X",
                     touchpoint="gate 9")  # the same feedback under a second event id
    await _consume(pool, ctx, [first, worse, gate_a, again, gate_b, happy, twice])

    async with pool.acquire() as conn:
        alerts = await conn.fetch("SELECT * FROM alerts ORDER BY raised_at, feedback_id")
        by_feedback = {r["feedback_id"]: r for r in await conn.fetch("SELECT * FROM alert_feedback")}
        cust = await conn.fetchrow("SELECT * FROM alerts WHERE feedback_id = $1", first.data.id)
        place = await conn.fetchrow("SELECT * FROM alerts WHERE feedback_id = $1", gate_a.data.id)
        notes = await conn.fetch("SELECT * FROM notifications WHERE alert_id = $1 ORDER BY kind, seq", cust["alert_id"])
        steps = await conn.fetch("SELECT action FROM alert_events WHERE alert_id = $1 ORDER BY id", cust["alert_id"])
        outbox = [r["topic"] for r in await conn.fetch("SELECT topic FROM outbox ORDER BY id")]

    assert len(alerts) == 2
    assert (cust["feedback_count"], cust["severity"]) == (3, -3)  # grouped by customer across three stores
    assert (place["feedback_count"], place["severity"]) == (2, -2)  # grouped by place; the second copy ignored
    assert {by_feedback[f.data.id]["alert_id"] for f in (first, worse, again)} == {cust["alert_id"]}
    assert by_feedback[gate_b.data.id]["alert_id"] == place["alert_id"] and happy.data.id not in by_feedback
    assert [r["action"] for r in steps] == ["raised", "grouped", "grouped"]
    # raised, then one update for the worse feedback; the milder one came within the quiet interval
    assert [(n["kind"], n["seq"]) for n in notes] == [("raised", 0), ("update", 0)]
    update = next(n for n in notes if n["kind"] == "update")
    async with pool.acquire() as conn:  # its mails' bytes, in the mail queue (one per recipient)
        [queued] = await conn.fetch("SELECT message FROM mail_queue WHERE ref = $1", update["notification_id"])
    body = email.message_from_bytes(queued["message"], policy=email.policy.default).get_body(("plain",)).get_content()
    assert "排队等了四十分钟" in body and "cancelling my card" in body
    assert outbox.count(ctx.settings.topic(ALERT_RAISED.topic)) == 2
    assert outbox.count(ctx.settings.topic(ALERT_UPDATED.topic)) == 3
    assert len(published) == 7  # every consumed event scored, the copy included

    # The next batch finds the open alert in the database and joins it.
    later = feedback(rating={"scale": "mot", "value": -3}, location="store-1", customer=customer)
    await _consume(pool, ctx, [later])
    async with pool.acquire() as conn:
        cust = await conn.fetchrow("SELECT * FROM alerts WHERE alert_id = $1", cust["alert_id"])
        kinds = [(r["kind"], r["seq"]) for r in await conn.fetch(
            "SELECT kind, seq FROM notifications WHERE alert_id = $1 ORDER BY kind, seq", cust["alert_id"])]
    assert cust["feedback_count"] == 4 and await _count_alerts(pool) == 2
    assert kinds == [("raised", 0), ("update", 0)]  # not worse than -3 and within the quiet interval


async def _count_alerts(pool) -> int:
    async with pool.acquire() as conn:
        return await conn.fetchval("SELECT count(*) FROM alerts")


HOT_TABLES = ("customer_moments", "alerts", "alert_feedback", "alert_events", "notifications", "mail_queue", "outbox")


async def test_a_batch_writes_every_table_in_one_statement(batch_ctx):
    """On a loaded machine a round trip costs more than the rows it carries: a batch that raises,
    groups and mails writes its moments, alerts, links, history, notifications, mails and outbox
    events in one statement, not one per table."""
    pool, ctx, _ = batch_ctx
    customer = {"id": "c-one-statement", "email": "li.na@example.cn"}
    events = [feedback(rating={"scale": "mot", "value": -2}, location="store-3", customer=customer),
              feedback(channel="web", text="Rude staff, I am cancelling my card.", location="store-4", customer=customer),
              feedback(rating={"scale": "mot", "value": -1}, location="hotel-2", touchpoint="front desk")]
    stored = feedback(rating={"scale": "mot", "value": -1}, location="hotel-2", touchpoint="front desk")
    await _consume(pool, ctx, [stored])  # an open alert the batch joins (an UPDATE of a stored alert)
    queries: list[str] = []

    def log(record) -> None:
        queries.append(record.query)

    async with pool.acquire() as conn:
        conn.add_query_logger(log)
        try:
            async with conn.transaction():
                await handlers.on_feedback_received(ctx, conn, events)
        finally:
            conn.remove_query_logger(log)
    written = [q for q in queries if any(f"INSERT INTO {t} " in q or f"UPDATE {t} " in q for t in HOT_TABLES)]
    assert len(written) == 1, written
    assert all(f"INSERT INTO {t} " in written[0] for t in HOT_TABLES) and "UPDATE alerts " in written[0]
    async with pool.acquire() as conn:
        place = await conn.fetchrow("SELECT * FROM alerts WHERE feedback_id = $1", stored.data.id)
        steps = [r["action"] for r in await conn.fetch(
            "SELECT action FROM alert_events WHERE alert_id = $1 ORDER BY id", place["alert_id"])]
        queued = await conn.fetchval("SELECT count(*) FROM mail_queue")
        moments = await conn.fetchval("SELECT count(*) FROM customer_moments WHERE feedback_id = ANY($1::text[])",
                                      [e.data.id for e in events])
    assert place["feedback_count"] == 2 and steps == ["raised", "grouped"]  # the stored alert was updated
    assert moments == 2 and queued >= 3  # the customer's two moments; raised, raised and update mails
