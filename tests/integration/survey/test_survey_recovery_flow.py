"""A recovery survey end to end, through the real broker, PostgreSQL and an SMTP server:
survey.requested.v1 -> one bilingual email -> the link's form -> feedback.received.v1."""

from __future__ import annotations

import json
import re
from email.header import decode_header, make_header
from urllib.parse import urlsplit

import pytest

from services.survey import invitations
from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope
from tests.integration.survey.support import (
    CollectingSmtp,
    SmtpServer,
    link_in,
    publish,
    read_topic,
    survey_requested,
)
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

BASE = "https://survey.example.cn"


def settings(service_env: dict, smtp_port: int, **extra) -> SurveySettings:
    return SurveySettings(**(service_env | {
        "smtp_host": "127.0.0.1", "smtp_port": smtp_port, "survey_public_base_url": BASE,
        "smtp_from": "Keymoment 客户关怀 <care@keymoment.example>"} | extra))


async def test_recovery_survey_email_form_and_feedback_event(service_env, database_url, kafka_bootstrap):
    request_event = survey_requested(alert_id="alert-7f3a")
    no_email = survey_requested(alert_id="alert-0000", email_addr=None)
    with SmtpServer(CollectingSmtp()) as smtp:
        app = create_app(settings(service_env, smtp_port_of(smtp)))
        async with running(app) as svc:
            consumer = svc.runtime.consumers[0]
            # the event, the same event redelivered, and a second event repeating the request id
            again = survey_requested(alert_id="alert-7f3a", request_id=request_event.data.request_id)
            await publish(service_env, request_event, request_event, again, no_email)
            await wait_until(lambda: len(smtp.messages) >= 1, timeout=20, what="the invitation email")
            await wait_until(lambda: consumer.status.processed >= 4, timeout=20, what="all four events consumed")

            async def settled() -> bool:
                return set((await delivery_states(svc)).values()) == {"sent", "unsendable"}

            await wait_until(settled, timeout=10, what="delivery states recorded")
            states = await delivery_states(svc)
            assert states == {request_event.data.request_id: "sent", no_email.data.request_id: "unsendable"}
            assert len(smtp.messages) == 1, "exactly one email for one request"

            message = smtp.messages[0]
            assert smtp.recipients[0] == ["li.wei@example.cn"]
            raw_subject = re.search(rb"^Subject: (.+(?:\r?\n[ \t].+)*)", smtp.raw[0], re.M).group(1).decode()
            assert "=?utf-8?" in raw_subject.lower(), "non-ASCII subject must be RFC 2047 encoded"
            assert str(make_header(decode_header(raw_subject))) == "我们解决了您的问题吗？ / Did we put it right?"
            plain = message.get_body(("plain",)).get_content()
            html = message.get_body(("html",)).get_content()
            assert "李伟您好" in plain and "Dear 李伟" in plain
            assert plain.index("您好") < plain.index("Dear"), "the customer's language comes first"
            link = link_in(message)
            assert link.startswith(f"{BASE}/s/recovery?t=") and link.replace("&", "&amp;") in html

            path = urlsplit(link)._replace(scheme="", netloc="").geturl()
            async with svc.client() as http:
                page = await http.get(path)
                assert page.status_code == 200, page.text
                assert page.headers["referrer-policy"] == "no-referrer"
                assert 'name="q.satisfaction"' in page.text and 'lang="zh-CN"' in page.text
                token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)
                submission = re.search(r'name="submission_id" value="([^"]+)"', page.text).group(1)

                form = {"t": token, "submission_id": submission, "lang": "zh-CN",
                        "q.satisfaction": "-2", "q.comment": "行李还是没有找到，客服也没回电话。"}
                missing = await http.post("/s/recovery/responses", data={**form, "q.satisfaction": ""})
                assert missing.status_code == 422 and "请回答此问题" in missing.text and 'role="alert"' in missing.text
                assert "行李还是没有找到" in missing.text, "the re-rendered form keeps what was typed"

                done = await http.post("/s/recovery/responses", data=form)
                assert done.status_code == 200 and "感谢您的反馈" in done.text, done.text
                again_post = await http.post("/s/recovery/responses", data=form)
                assert again_post.status_code == 409 and "您已回答过此问卷" in again_post.text
                revisit = await http.get(path)
                assert revisit.status_code == 200 and "您已回答过此问卷" in revisit.text and "<form" not in revisit.text

            topic = service_env["kafka_topic_prefix"] + FEEDBACK_RECEIVED.topic
            await wait_until(lambda: _outbox_empty(svc), timeout=10, what="outbox drained")
            messages = await read_topic(kafka_bootstrap, topic, at_least=1)
            assert len(messages) == 1, "a resubmitted link must not publish again"
            envelope = Envelope.from_kafka(headers=messages[0].headers, key=messages[0].key, value=messages[0].value)
            fb: FeedbackReceived = envelope.data
            assert envelope.id == fb.id
            assert envelope.source == "/keymoment/survey"  # the CloudEvents source of every survey event
            assert fb.channel == "survey" and fb.source == "survey"
            assert (fb.rating.scale, fb.rating.value) == ("mot", -2)
            assert fb.text == "行李还是没有找到，客服也没回电话。"
            assert fb.survey.survey_id == "recovery" and fb.survey.question_id == "satisfaction"
            assert fb.survey.recovery_for_alert_id == "alert-7f3a"
            assert fb.customer.email == "li.wei@example.cn" and fb.customer.id == "c-42"
            assert (fb.location, fb.touchpoint) == ("PVG T2", "check-in")

            async with svc.client() as http:
                metrics = (await http.get("/metrics")).text
            assert 'keymoment_survey_invitations_sent_total 1.0' in metrics
            assert 'keymoment_survey_responses_total{outcome="accepted",survey="recovery"} 1.0' in metrics
            assert 'keymoment_survey_responses_total{outcome="already_answered",survey="recovery"} 1.0' in metrics


async def test_transient_smtp_failure_is_retried_and_sent_once(service_env, database_url):
    with SmtpServer(CollectingSmtp(refuse_first=1)) as smtp:
        app = create_app(settings(service_env, smtp_port_of(smtp), mail_retry_initial_seconds=0.05))
        async with running(app) as svc:
            event = survey_requested(language="en", name=None)
            await publish(service_env, event)
            await wait_until(lambda: len(smtp.messages) == 1, timeout=20, what="the retried invitation")
            async def sent() -> bool:
                return (await delivery_states(svc))[event.data.request_id] == "sent"

            await wait_until(sent, timeout=10, what="sent state")
            async with svc.runtime.pool.acquire() as conn:
                row = (await invitations.delivery(conn, event.data.request_id)).mail
            assert smtp.refused == 1 and row.attempts == 2
            assert smtp.messages[0]["Message-ID"] == row.message_id
            plain = smtp.messages[0].get_body(("plain",)).get_content()
            assert plain.startswith("Hello,"), "English first when the request asks for English"
            async with svc.client() as http:
                metrics = (await http.get("/metrics")).text
            assert "keymoment_survey_invitation_retries_total 1.0" in metrics
        # restart: the sent invitation is not sent again
        async with running(create_app(settings(service_env, smtp_port_of(smtp)))) as svc2:
            await wait_until(lambda: _sender_idle(svc2), timeout=10, what="sender loop ran")
            assert (await delivery_states(svc2)) == {event.data.request_id: "sent"}
        assert len(smtp.messages) == 1


def smtp_port_of(handler: CollectingSmtp) -> int:
    return handler.port


async def _outbox_empty(svc) -> bool:
    return await svc.runtime.relay.pending() == 0


async def _sender_idle(svc) -> bool:
    """The sender has looked for due mail at least twice, and the gauge (refreshed at scrape) shows the sent one."""
    async with svc.client() as http:
        await http.get("/metrics")
    return (svc.app.state.context.mail.rounds >= 2
            and svc.runtime.registry.get_sample_value("keymoment_survey_invitations", {"state": "sent"}) == 1.0)


async def delivery_states(svc) -> dict[str, str]:
    """Each recorded request's invitation delivery state (the mail queue's, or unsendable)."""
    async with svc.runtime.pool.acquire() as conn:
        ids = [r["request_id"] for r in await conn.fetch("SELECT request_id FROM survey_requests")]
        return {request_id: (await invitations.delivery(conn, request_id)).state for request_id in ids}
