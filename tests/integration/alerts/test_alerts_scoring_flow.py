"""Feedback in through the real broker -> scored, alert stored, manager mailed (real PostgreSQL and SMTP)."""

from __future__ import annotations

import pytest

from shared.contracts import AlertRaised, FeedbackScored
from tests.integration.alerts.support import (
    alerts_app,
    database,
    events_of,
    feedback,
    plain,
    producer,
    read_topic,
    settings,
    smtp_server,
    wait_mail,
)
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


async def test_minus3_kiosk_tap_gives_one_alert_and_one_email_to_the_routed_manager(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s), producer(s) as send, database(database_url) as db:
            tap = feedback(channel="kiosk", rating={"scale": "mot", "value": -3}, location="PEK-T3",
                           touchpoint="baggage claim", kiosk={"device_id": "k-17", "face": 1})
            await send(tap)
            await send(tap)  # the same event delivered twice
            alert = await db.wait_alert(tap.data.id)
            await wait_mail(smtp, 2)
            await wait_until(lambda: db.processed(tap.id), what="event processed")
            raised = await read_topic(s.kafka_bootstrap_servers, s.topic("alert.raised.v1"), at_least=1)
            scored = await read_topic(s.kafka_bootstrap_servers, s.topic("feedback.scored.v1"), at_least=1)
            notifications = await db.notifications(alert["alert_id"])

        assert (alert["severity"], alert["status"], alert["team"], alert["route"]) == (-3, "open", "airport-ground", "airports")
        assert alert["sla_due_at"] is not None
        assert len(await db_rows(database_url)) == 1
        # exactly one notification, to the airport team's level-1 (delivery managers): one email to each
        # (was one email to both before issue 14: each mail's links are in its recipient's name)
        assert len(notifications) == 1 and len(smtp.messages) == 2
        assert sorted(smtp.recipients) == [["duty.manager.pek@example.com"], ["li.na@example.com"]]
        message = smtp.messages[0]
        assert message.get_content_type() == "multipart/alternative"
        assert "MOT -3" in message["Subject"] and "PEK-T3" in message["Subject"]
        assert sorted(m["Message-ID"] for m in smtp.messages) == notifications[0]["message_ids"]
        assert [a.addr_spec for a in message["To"].addresses] == smtp.recipients[0]
        body = plain(message)
        assert "严重程度 / Severity: MOT -3" in body
        assert "下一步 / Next step: 了解" in body and "http://alerts.test/l/" in body
        assert message.get_body(("html",)).get_content().startswith("<!doctype html>")
        # one raised event, one scored event (no duplicates from the redelivery)
        raised_events = events_of(raised, AlertRaised)
        assert [(e.alert_id, e.severity, e.team) for e in raised_events] == [(alert["alert_id"], -3, "airport-ground")]
        scored_events = events_of(scored, FeedbackScored)
        assert [(e.feedback_id, e.mot, e.negative) for e in scored_events] == [(tap.data.id, -3, True)]


async def db_rows(url: str) -> list:
    async with database(url) as db:
        return await db.alerts()


async def test_chinese_email_complaint_with_5_stars_and_a_12315_threat_becomes_minus3(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s), producer(s) as send, database(database_url) as db:
            complaint = feedback(
                channel="email", rating={"scale": "stars", "value": 5}, location="上海门店", language="zh-CN",
                text="你们把我的行李弄丢了三天，客服一直推脱，再不处理我就打12315投诉！",
                customer={"id": "c-88", "name": "王芳", "email": "wang.fang.customer@example.cn"},
                email={"subject": "投诉：行李丢失", "sender": "wang.fang.customer@example.cn"},
            )
            await send(complaint)
            alert = await db.wait_alert(complaint.data.id)
            await wait_mail(smtp, 1)
            linked = await db.conn.fetchrow("SELECT * FROM alerts.alert_feedback WHERE feedback_id = $1", complaint.data.id)
        assert alert["severity"] == -3
        assert alert["team"] == "contact-centre"  # channel email
        assert "regulator" in linked["escalation"]
        body = plain(smtp.messages[0])
        assert "12315" in body  # the feedback text is in the manager's mail
        subject = smtp.messages[0]["Subject"]
        assert "上海门店" in subject and "MOT -3" in subject
        assert smtp.recipients[0] == ["cc.supervisor@example.com"]


async def test_positive_tap_is_scored_but_raises_no_alert(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s), producer(s) as send, database(database_url) as db:
            tap = feedback(channel="kiosk", rating={"scale": "mot", "value": 3}, location="store-12", touchpoint="checkout")
            await send(tap)
            await wait_until(lambda: db.processed(tap.id), what="event processed")
            scored = await read_topic(s.kafka_bootstrap_servers, s.topic("feedback.scored.v1"), at_least=1)
            assert await db.alerts() == []
            assert await db.notifications() == []
        assert [(e.feedback_id, e.mot, e.negative) for e in events_of(scored, FeedbackScored)] == [(tap.data.id, 3, False)]
        assert smtp.messages == []
