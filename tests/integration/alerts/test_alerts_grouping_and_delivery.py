"""Grouping, silences, restarts without loss or duplicate mail, the crash window and SMTP retries."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
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
    return not await db.conn.fetchval("SELECT count(*) FROM alerts.mail_queue WHERE state IN ('pending', 'sending')")


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
        # one mail per recipient: the store's raised and update mails to its one delivery manager, the
        # airport's raised mail to each of its two (was 3 mails, one per notification, before issue 14)
        assert len(smtp.messages) == 4
        assert sum("更新/Update" in m["Subject"] for m in smtp.messages) == 1


async def _alert_id(url, feedback_id):
    async with database(url) as db:
        return (await db.alert_for(feedback_id))["alert_id"]


async def test_silence_mutes_mail_but_keeps_the_alert_until_expired(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            matchers = {"location": "store-*", "severity": [-1, -2]}
            for_ever = await http.post("/v1/silences", headers=ADMIN, json={
                "matchers": matchers, "ends_at": "2099-01-01T00:00:00+08:00", "comment": "for ever"})
            assert for_ever.status_code == 422 and "ALERTS_SILENCE_MAX_DAYS" in for_ever.text  # capped (issue 14)
            created = await http.post("/v1/silences", headers=ADMIN, json={
                "matchers": matchers, "ends_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
                "comment": "支付系统故障，已知问题 / known POS outage",
            })
            assert created.status_code == 201, created.text
            silence = created.json()
            assert silence["active"] and silence["created_by"] == "admin"
            no_matchers = await http.post("/v1/silences", headers=ADMIN, json={
                "matchers": {}, "ends_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(), "comment": "everything"})
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


async def _two_alerts_the_first_held_by_a_dead_sender(service_env, database_url, smtp, clock) -> tuple[str, str]:
    """Two -3 alerts at the airport (two delivery managers each), raised with no sender running; a
    process claimed the first one's mails and died during the SMTP exchange: they stay 'sending'
    under its name until their lease runs out."""
    quiet = settings(service_env, smtp, mail_sender_enabled=False)
    one, two = (feedback(rating={"scale": "mot", "value": -3}, location=f"PVG-{i}") for i in (1, 2))
    async with alerts_app(quiet, clock=clock), producer(quiet) as send, database(database_url) as db:
        await send(one, two)
        a1, a2 = await db.wait_alert(one.data.id), await db.wait_alert(two.data.id)
        await db.conn.execute(
            """UPDATE alerts.mail_queue SET state = 'sending', claimed_by = 'dead', lease_until = $2, attempts = 1
               WHERE ref IN (SELECT notification_id FROM alerts.notifications WHERE alert_id = $1)""",
            a1["alert_id"], clock.now() + timedelta(seconds=60))
    return a1["alert_id"], a2["alert_id"]


async def test_a_mail_whose_smtp_outcome_is_unknown_after_a_crash_is_resent_with_the_same_message_id(
    service_env, database_url
):
    """Issue 13: a mail left 'sending' by a process that died is resent once its lease ran out (the
    default MAIL_UNCERTAIN_POLICY=resend), with the same bytes and Message-ID, so a copy that did
    arrive collapses with it (was: marked uncertain and never resent)."""
    clock = ManualClock()
    with smtp_server() as smtp:
        a1, a2 = await _two_alerts_the_first_held_by_a_dead_sender(service_env, database_url, smtp, clock)
        s = settings(service_env, smtp)
        async with alerts_app(s, clock=clock) as app, database(database_url) as db:
            [fresh] = await db.notifications(a2)
            await wait_mail(smtp, 2)  # the second alert's, one per delivery manager
            assert {m["Message-ID"] for m in smtp.messages} == set(fresh["message_ids"])
            clock.advance(seconds=s.mail_lease_seconds + 1)
            await wait_mail(smtp, 4)
            await wait_until(lambda: _settled(db), what="mails settled")
            [stale] = await db.notifications(a1)
            [fresh] = await db.notifications(a2)
            uncertain = app.runtime.registry.get_sample_value(
                "keymoment_mail_uncertain_total", {"purpose": "alert_notification"})
        assert (stale["status"], fresh["status"]) == ("sent", "sent")
        assert stale["attempts"] == 2 and uncertain == 2
        assert sorted(smtp.recipients) == [["duty.manager.pek@example.com"]] * 2 + [["li.na@example.com"]] * 2
        assert {m["Message-ID"] for m in smtp.messages[2:]} == set(stale["message_ids"])


async def test_under_the_hold_policy_a_mail_whose_outcome_is_unknown_is_held_not_resent(service_env, database_url):
    """MAIL_UNCERTAIN_POLICY=hold keeps the old promise (never sent twice): the mail is 'uncertain'
    until a person requeues it."""
    clock = ManualClock()
    with smtp_server() as smtp:
        a1, a2 = await _two_alerts_the_first_held_by_a_dead_sender(service_env, database_url, smtp, clock)
        s = settings(service_env, smtp, mail_uncertain_policy="hold")
        async with alerts_app(s, clock=clock), database(database_url) as db:
            await wait_mail(smtp, 2)
            clock.advance(seconds=s.mail_lease_seconds + 1)
            await wait_until(lambda: _notification_status(db, a1, "uncertain"), what="held as uncertain")
            [stale] = await db.notifications(a1)
            [fresh] = await db.notifications(a2)
        assert (stale["status"], fresh["status"]) == ("uncertain", "sent")
        assert sorted(smtp.recipients) == [["duty.manager.pek@example.com"], ["li.na@example.com"]]
        assert {m["Message-ID"] for m in smtp.messages} == set(fresh["message_ids"])


async def _notification_status(db, alert_id: str, status: str) -> bool:
    return [n["status"] for n in await db.notifications(alert_id)] == [status]


async def test_smtp_refusal_is_retried_with_backoff_and_the_same_message_id(service_env, database_url):
    clock = ManualClock()
    with smtp_server(refuse_first=1) as smtp:
        s = settings(service_env, smtp, mail_retry_initial_seconds=2.0)  # alerts' first retry came after 2 s
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
    return await _notification_status(db, alert_id, status)


def _spawn_alerts(service_env: dict, smtp, port: int) -> subprocess.Popen:
    env = {
        **os.environ, "KEYMOMENT_ENV": "test", "PORT": str(port), "LOG_LEVEL": "WARNING",
        "DATABASE_URL": service_env["database_url"], "KAFKA_BOOTSTRAP_SERVERS": service_env["kafka_bootstrap_servers"],
        "KAFKA_TOPIC_PREFIX": service_env["kafka_topic_prefix"], "KAFKA_TOPIC_PARTITIONS": "2",
        "KAFKA_SESSION_TIMEOUT_MS": str(service_env["kafka_session_timeout_ms"]),
        "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp.port), "ALERTS_GROUP_WINDOW_SECONDS": "0",
        # a mail the killed process left 'sending' is settled (resent) after a 10 s lease, not 60 s
        "MAIL_SMTP_TIMEOUT_SECONDS": "5", "MAIL_LEASE_SECONDS": "10",
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
        # issue 13: a mail in flight at the kill is resent once its lease ran out (was: 'uncertain', never
        # resent), with the same Message-ID; everything else was sent exactly once
        assert set(statuses) == {"sent"}
        copies = Counter(m["Message-ID"] for m in smtp.messages)
        sent_ids = {i for n in notifications for i in n["message_ids"]}
        assert set(copies) == sent_ids and len(sent_ids) == 40
        # a second copy only of a mail whose DATA was in flight at the kill: at most one per SMTP session
        assert sum(n - 1 for n in copies.values()) <= s.mail_concurrency


class _DropsDuringData(CollectingSmtp):
    """Takes the message, then cuts the connection before answering (the first ``drop_first`` times,
    or always): did it arrive? The sender cannot know."""

    def __init__(self, drop_first: int | None = None) -> None:
        super().__init__()
        self.drop_first = drop_first
        self.dropped = 0

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        await super().handle_DATA(server, session, envelope)
        if self.drop_first is None or self.dropped < self.drop_first:
            self.dropped += 1
            server.transport.close()
        return "250 OK"


@contextlib.contextmanager
def _dropping_server(handler: _DropsDuringData):
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    try:
        yield handler
    finally:
        controller.stop()


async def test_connection_lost_during_data_is_resent_with_the_same_message_id(service_env, database_url):
    """Issue 13 (default MAIL_UNCERTAIN_POLICY=resend): a DATA exchange that broke off is sent again, the
    same bytes with the same Message-ID, so a copy that did arrive collapses with it (was: 'uncertain',
    never resent)."""
    clock = ManualClock()
    with _dropping_server(_DropsDuringData(drop_first=1)) as handler:
        s = settings(service_env, handler)
        async with alerts_app(s, clock=clock) as app, producer(s) as send, database(database_url) as db:
            tap = feedback(rating={"scale": "mot", "value": -3}, location="store-21")
            await send(tap)
            alert = await db.wait_alert(tap.data.id)
            await wait_until(lambda: handler.dropped == 1, what="DATA broken off")
            await wait_until(lambda: _status(db, alert["alert_id"], "pending"), what="pending again")
            clock.advance(seconds=2 * s.mail_retry_initial_seconds)  # past the (jittered) first retry delay
            await wait_until(lambda: _status(db, alert["alert_id"], "sent"), what="resent")
            [raised] = await db.notifications(alert["alert_id"])
            uncertain = app.runtime.registry.get_sample_value(
                "keymoment_mail_uncertain_total", {"purpose": "alert_notification"})
    assert raised["attempts"] == 2 and uncertain == 1
    assert [m["Message-ID"] for m in handler.messages] == [raised["message_id"]] * 2


async def test_connection_lost_during_data_is_held_under_the_hold_policy_and_escalation_goes_out(
    service_env, database_url
):
    clock = ManualClock()
    with _dropping_server(_DropsDuringData()) as handler:
        s = settings(service_env, handler, mail_uncertain_policy="hold")
        async with alerts_app(s, clock=clock), producer(s) as send, database(database_url) as db:
            tap = feedback(rating={"scale": "mot", "value": -3}, location="store-21")
            await send(tap)
            alert = await db.wait_alert(tap.data.id)
            await wait_until(lambda: _status(db, alert["alert_id"], "uncertain"), what="notification uncertain")
            clock.advance(hours=1)  # well past any retry backoff
            # an hour later: the uncertain mail was not retried, and the SLA escalation (the safety net) went
            # out, one mail to each of level 2's two managers
            await wait_until(lambda: len(handler.messages) == 3, what="escalation mails")
            rows = await db.notifications(alert["alert_id"])
    raised = next(r for r in rows if r["kind"] == "raised")
    assert raised["status"] == "uncertain" and raised["attempts"] == 1
    assert "DATA exchange broke off" in raised["last_error"]
    assert handler.messages[0]["Message-ID"] == raised["message_id"]
    assert {m["Message-ID"] for m in handler.messages[1:]} == set(rows[1]["message_ids"])
    assert rows[1]["kind"] == "escalation"


async def test_an_smtp_session_dropped_while_idle_is_reopened_without_a_retry(service_env):
    """Sessions are reused without an RSET per mail; a server that hung up in between costs a reconnect, not a retry."""
    from services.alerts import emails
    from shared.mail.smtp import SmtpSession

    handler = CollectingSmtp()
    port = free_port()
    handler.port = port
    s = settings(service_env, handler)
    session = SmtpSession(s)

    def mail(n: int) -> bytes:
        return emails.AlertMail(
            mail_id=f"m{n}", notification_id=f"n{n}", alert_id="a", message_id=f"<m{n}@test>", recipient="a@example.com",
            sender=s.smtp_from, subject=f"mail {n}", text="t", html="<p>h</p>", date=datetime.now(UTC),
        ).message()

    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        await session.deliver("keymoment@localhost", ["a@example.com"], mail(1))
        await session.deliver("keymoment@localhost", ["a@example.com"], mail(2))  # the same session
        controller.stop()  # the server goes away and drops the idle session
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        await session.deliver("keymoment@localhost", ["a@example.com"], mail(3))
    finally:
        await session.close()
        controller.stop()
    assert [m["Subject"] for m in handler.messages] == ["mail 1", "mail 2", "mail 3"]
