"""Grouping, silences, restarts without loss or duplicate mail, the crash window and SMTP retries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from keymoment.devstack.ports import free_port
from shared.clock import ManualClock
from aiosmtpd.controller import Controller

from tests.integration.alerts.support import (
    CollectingSmtp,
    alerts_app,
    database,
    feedback,
    producer,
    settings,
    smtp_server,
    wait_mail,
)
from tests.support.services import wait_until

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-token"}
ROOT = Path(__file__).resolve().parents[3]


async def _all_processed(db, events) -> bool:
    for event in events:
        if not await db.processed(event.id):
            return False
    return True


async def _settled(db) -> bool:
    return not await db.conn.fetchval("SELECT count(*) FROM alerts.notifications WHERE status IN ('pending', 'sending')")


async def test_grouping_by_customer_and_by_place_without_a_mail_flood(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s), producer(s) as send, database(database_url) as db:
            customer = {"id": "c-1", "email": "zhang.san@example.cn"}
            first = feedback(rating={"scale": "mot", "value": -2}, location="store-1", customer=customer)
            await send(first)
            alert = await db.wait_alert(first.data.id)
            await wait_mail(smtp, 1)
            milder = feedback(rating={"scale": "mot", "value": -1}, location="store-2", customer=customer)
            worse = feedback(channel="web", text="Worst service ever, I want a refund now", location="store-2",
                             rating={"scale": "mot", "value": -3}, customer=customer)
            gate_a = feedback(rating={"scale": "mot", "value": -1}, location="airport-X", touchpoint="gate 5")
            gate_b = feedback(rating={"scale": "mot", "value": -1}, location="airport-X", touchpoint="gate 5")
            await send(milder)
            await wait_until(lambda: db.processed(milder.id), what="milder processed")
            await send(worse, gate_a)
            await wait_until(lambda: db.processed(gate_a.id), what="gate a processed")
            await send(gate_b)
            await wait_until(lambda: _all_processed(db, [worse, gate_b]), what="all processed")
            await wait_until(lambda: _settled(db), what="notifications sent")
            alerts = await db.alerts()
            grouped = await db.alert_for(worse.data.id)
            notifications = await db.notifications(alert["alert_id"])
            place = await db.alert_for(gate_b.data.id)
        assert len(alerts) == 2
        assert (grouped["alert_id"], grouped["feedback_count"], grouped["severity"]) == (alert["alert_id"], 3, -3)
        # raised, then an update only for the worse feedback (the milder one came within the quiet interval)
        assert [n["kind"] for n in notifications] == ["raised", "update"]
        assert (place["feedback_count"], place["alert_id"]) == (2, (await _alert_id(database_url, gate_a.data.id)))
        assert len(smtp.messages) == 3
        assert sum("更新/Update" in m["Subject"] for m in smtp.messages) == 1


async def _alert_id(url, feedback_id):
    async with database(url) as db:
        return (await db.alert_for(feedback_id))["alert_id"]


async def test_silence_mutes_mail_but_keeps_the_alert_until_expired(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            created = await http.post("/v1/silences", headers=ADMIN, json={
                "matchers": {"location": "store-*", "severity": [-1, -2]},
                "ends_at": "2099-01-01T00:00:00+08:00", "comment": "支付系统故障，已知问题 / known POS outage",
            })
            assert created.status_code == 201, created.text
            silence = created.json()
            assert silence["active"] and silence["created_by"] == "admin"
            no_matchers = await http.post("/v1/silences", headers=ADMIN, json={
                "matchers": {}, "ends_at": "2099-01-01T00:00:00Z", "comment": "everything"})
            assert no_matchers.status_code == 422

            muted = feedback(rating={"scale": "mot", "value": -2}, location="store-9", touchpoint="checkout")
            await send(muted)
            alert = await db.wait_alert(muted.data.id)
            assert alert["silence_id"] == silence["silence_id"]
            [note] = await db.notifications(alert["alert_id"])
            assert (note["status"], note["silence_id"]) == ("suppressed", silence["silence_id"])
            listed = (await http.get("/v1/alerts", headers=ADMIN)).json()["alerts"]
            assert [(a["alert_id"], a["silenced"]) for a in listed] == [(alert["alert_id"], True)]

            critical = feedback(rating={"scale": "mot", "value": -3}, location="store-9", touchpoint="entrance")
            await send(critical)  # -3 is not matched by the silence
            await db.wait_alert(critical.data.id)
            await wait_mail(smtp, 1)

            expired = await http.delete(f"/v1/silences/{silence['silence_id']}", headers=ADMIN)
            assert expired.status_code == 200 and not expired.json()["active"]
            assert (await http.get("/v1/silences", headers=ADMIN)).json() == []
            assert len((await http.get("/v1/silences", params={"include_expired": "true"}, headers=ADMIN)).json()) == 1

            after = feedback(rating={"scale": "mot", "value": -2}, location="store-10", touchpoint="checkout")
            await send(after)
            await db.wait_alert(after.data.id)
            await wait_mail(smtp, 2)
        assert "store-9" in smtp.messages[0]["Subject"] and "store-10" in smtp.messages[1]["Subject"]


async def test_restart_in_the_middle_loses_no_alert_and_sends_no_duplicate_email(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp, alerts_group_window_seconds=0)
        events = [feedback(rating={"scale": "mot", "value": -1 - i % 3}, location=f"restaurant-{i}",
                           customer={"id": f"r-{i}"}) for i in range(30)]
        async with producer(s) as send:
            async with alerts_app(s), database(database_url) as db:
                await send(*events[:20])
                await wait_until(lambda: _count(db, 3), what="some alerts stored")
            # stopped in the middle; more feedback and a redelivery of earlier events arrive meanwhile
            await send(*events[20:], *events[:5])
            async with alerts_app(s), database(database_url) as db:
                await wait_until(lambda: _all_processed(db, events), timeout=30, what="every event processed")
                await wait_mail(smtp, 30, timeout=30)
                await wait_until(lambda: _settled(db), what="notifications settled")
                alerts = await db.alerts()
                notifications = await db.notifications()
        assert sorted(a["feedback_id"] for a in alerts) == sorted(e.data.id for e in events)
        assert len(notifications) == 30 and {n["status"] for n in notifications} == {"sent"}
        message_ids = [m["Message-ID"] for m in smtp.messages]
        assert len(message_ids) == 30 and len(set(message_ids)) == 30


async def _count(db, at_least: int) -> bool:
    return len(await db.alerts()) >= at_least


async def test_a_mail_whose_smtp_outcome_is_unknown_after_a_crash_is_not_resent(service_env, database_url):
    clock = ManualClock()
    with smtp_server() as smtp:
        quiet = settings(service_env, smtp, alerts_mail_sender_enabled=False)
        one, two = (feedback(rating={"scale": "mot", "value": -3}, location=f"PVG-{i}") for i in (1, 2))
        async with alerts_app(quiet, clock=clock), producer(quiet) as send, database(database_url) as db:
            await send(one, two)
            a1, a2 = await db.wait_alert(one.data.id), await db.wait_alert(two.data.id)
            # a process claimed the first notification and died during the SMTP exchange
            await db.conn.execute(
                """UPDATE alerts.notifications SET status = 'sending', claimed_at = $2, claimed_by = 'dead', attempts = 1
                   WHERE alert_id = $1""", a1["alert_id"], clock.now())
        s = settings(service_env, smtp)
        async with alerts_app(s, clock=clock) as app, database(database_url) as db:
            await wait_mail(smtp, 1)
            clock.advance(seconds=s.alerts_sending_lease_seconds + 1)
            sender = app.app.state.alerts.sender
            assert len(await sender.settle_stale()) == 1
            [stale] = await db.notifications(a1["alert_id"])
            [fresh] = await db.notifications(a2["alert_id"])
        assert (stale["status"], fresh["status"]) == ("uncertain", "sent")
        assert smtp.recipients == [["duty.manager.pek@example.com", "li.na@example.com"]]
        assert smtp.messages[0]["Message-ID"] == fresh["message_id"]


async def test_smtp_refusal_is_retried_with_backoff_and_the_same_message_id(service_env, database_url):
    clock = ManualClock()
    with smtp_server(refuse_first=1) as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s, clock=clock), producer(s) as send, database(database_url) as db:
            tap = feedback(rating={"scale": "mot", "value": -2}, location="store-3")
            await send(tap)
            alert = await db.wait_alert(tap.data.id)
            await wait_until(lambda: smtp.refused == 1, what="first attempt refused")
            await wait_until(lambda: _status(db, alert["alert_id"], "pending"), what="back to pending")
            [retry] = await db.notifications(alert["alert_id"])
            assert retry["attempts"] == 1 and "451" in retry["last_error"]
            assert 1.5 <= (retry["next_attempt_at"] - clock.now()).total_seconds() <= 2.5
            clock.advance(seconds=3)
            await wait_mail(smtp, 1)
            await wait_until(lambda: _status(db, alert["alert_id"], "sent"), what="sent")
            [sent] = await db.notifications(alert["alert_id"])
        assert sent["attempts"] == 2 and smtp.messages[0]["Message-ID"] == sent["message_id"]


async def _status(db, alert_id: str, status: str) -> bool:
    return await db.conn.fetchval("SELECT status FROM alerts.notifications WHERE alert_id = $1", alert_id) == status


def _spawn_alerts(service_env: dict, smtp, port: int) -> subprocess.Popen:
    env = {
        **os.environ, "KEYMOMENT_ENV": "test", "PORT": str(port), "LOG_LEVEL": "WARNING",
        "DATABASE_URL": service_env["database_url"], "KAFKA_BOOTSTRAP_SERVERS": service_env["kafka_bootstrap_servers"],
        "KAFKA_TOPIC_PREFIX": service_env["kafka_topic_prefix"], "KAFKA_TOPIC_PARTITIONS": "2",
        "KAFKA_SESSION_TIMEOUT_MS": str(service_env["kafka_session_timeout_ms"]),
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "ALERTS_GROUP_WINDOW_SECONDS": "0",
        # a row the killed process left 'sending' is settled as uncertain after 10 s, not 120 s
        "ALERTS_SMTP_TIMEOUT_SECONDS": "5", "ALERTS_SENDING_LEASE_SECONDS": "10",
    }
    return subprocess.Popen([sys.executable, "-m", "services.alerts"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _ready(port: int) -> bool:
    try:
        async with httpx.AsyncClient(timeout=1) as http:
            return (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def test_sigkill_in_the_middle_loses_no_alert_and_sends_no_duplicate_email(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp, alerts_group_window_seconds=0)
        events = [feedback(rating={"scale": "mot", "value": -1 - i % 3}, location=f"store-k{i}",
                           customer={"id": f"k-{i}"}) for i in range(40)]
        port = free_port()
        first = _spawn_alerts(service_env, smtp, port)
        try:
            await wait_until(lambda: _ready(port), timeout=30, what="alerts process ready")
            async with producer(s) as send, database(database_url) as db:
                await send(*events[:30])
                await wait_until(lambda: _count(db, 5), what="some alerts stored")
                first.send_signal(signal.SIGKILL)  # no shutdown hooks, no graceful stop
                first.wait(10)
                await send(*events[30:], *events[:10])
                second = _spawn_alerts(service_env, smtp, port := free_port())
                try:
                    await wait_until(lambda: _all_processed(db, events), timeout=40, what="every event processed")
                    await wait_until(lambda: _settled(db), timeout=30, what="notifications settled")
                    alerts = await db.alerts()
                    notifications = await db.notifications()
                finally:
                    second.terminate()
                    second.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        assert sorted(a["feedback_id"] for a in alerts) == sorted(e.data.id for e in events)
        assert len(notifications) == 40
        statuses = [n["status"] for n in notifications]
        # a mail in flight at the kill is 'uncertain' (never resent); everything else was sent exactly once
        assert set(statuses) <= {"sent", "uncertain"}
        message_ids = [m["Message-ID"] for m in smtp.messages]
        assert len(message_ids) == len(set(message_ids))
        sent_ids = {n["message_id"] for n in notifications if n["status"] == "sent"}
        assert sent_ids <= set(message_ids) and len(message_ids) <= 40


class _DropsDuringData(CollectingSmtp):
    """Takes the message, then cuts the connection before answering: did it arrive? The sender cannot know."""

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        await super().handle_DATA(server, session, envelope)
        server.transport.close()
        return "250 OK"


async def test_connection_lost_during_data_is_uncertain_and_never_resent(service_env, database_url):
    handler = _DropsDuringData()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    clock = ManualClock()
    try:
        s = settings(service_env, handler)
        async with alerts_app(s, clock=clock), producer(s) as send, database(database_url) as db:
            tap = feedback(rating={"scale": "mot", "value": -3}, location="store-21")
            await send(tap)
            alert = await db.wait_alert(tap.data.id)
            await wait_until(lambda: _status(db, alert["alert_id"], "uncertain"), what="notification uncertain")
            clock.advance(hours=1)  # well past any retry backoff
            # an hour later: the uncertain mail was not retried, and the SLA escalation (the safety net) went out
            await wait_until(lambda: len(handler.messages) == 2, what="escalation mail")
            rows = await db.notifications(alert["alert_id"])
    finally:
        controller.stop()
    raised = next(r for r in rows if r["kind"] == "raised")
    assert raised["status"] == "uncertain" and raised["attempts"] == 1
    assert "DATA exchange broke off" in raised["last_error"]
    assert [m["Message-ID"] for m in handler.messages] == [raised["message_id"], rows[1]["message_id"]]
    assert rows[1]["kind"] == "escalation"


async def test_an_smtp_session_dropped_while_idle_is_reopened_without_a_retry(service_env):
    """Sessions are reused without an RSET per mail; a server that hung up in between costs a reconnect, not a retry."""
    from types import SimpleNamespace

    from services.alerts.emails import build_message
    from services.alerts.sender import SmtpSession

    handler = CollectingSmtp()
    port = free_port()
    handler.port = port
    s = settings(service_env, handler)
    session = SmtpSession(SimpleNamespace(settings=s))

    def mail(n: int) -> bytes:
        return build_message(sender=s.smtp_from, recipients=["a@example.com"], subject_line=f"mail {n}", text="t",
                             body_html="<p>h</p>", msg_id=f"<m{n}@test>", created_at=datetime.now(UTC), alert_id="a")

    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await session.deliver(["a@example.com"], mail(1))
        await session.deliver(["a@example.com"], mail(2))  # the same session
        controller.stop()  # the server goes away and drops the idle session
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        await session.deliver(["a@example.com"], mail(3))
    finally:
        await session.close()
        controller.stop()
    assert [m["Subject"] for m in handler.messages] == ["mail 1", "mail 2", "mail 3"]
