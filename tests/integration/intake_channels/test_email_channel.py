"""Email in through the real SMTP listener and POST /v1/email, out on the real broker."""

from pathlib import Path

import aiosmtplib
import asyncpg
import pytest

from keymoment.devstack.ports import free_port
from services.intake.app import create_app
from tests.integration.intake_channels.support import dev_key, intake_settings, received
from tests.support.services import running, wait_until

DATA = Path(__file__).resolve().parents[2] / "data" / "email"

pytestmark = pytest.mark.integration


def fixture(name: str) -> bytes:
    return (DATA / name).read_bytes()


async def test_smtp_listener_end_to_end(service_env, kafka_bootstrap, database_url):
    smtp_port = free_port()
    settings = intake_settings(
        service_env, intake_smtp_port=smtp_port, intake_email_addresses="feedback@example.com",
        intake_email_max_bytes=128 * 1024,
    )
    async with running(create_app(settings)) as intake:
        send = dict(hostname="127.0.0.1", port=smtp_port, sender="wangjg1978@163.com", timeout=10)
        complaint = fixture("gbk_complaint_base64.eml")

        errors, reply = await aiosmtplib.send(complaint, recipients=["Feedback@Example.com"], **send)
        assert not errors and reply.startswith("2.0.0 OK accepted"), reply

        # The same Message-ID again (a sender's retry): 250, nothing new.
        errors, reply = await aiosmtplib.send(complaint, recipients=["feedback@example.com"], **send)
        assert reply.startswith("2.0.0 OK duplicate"), reply

        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await aiosmtplib.send(complaint, recipients=["ceo@example.com"], **send)
        assert refused.value.recipients[0].code == 550

        with pytest.raises(aiosmtplib.SMTPResponseException) as too_big:
            big = b"From: a@example.com\r\nSubject: big\r\n\r\n" + (b"x" * 76 + b"\r\n") * 2800
            await aiosmtplib.send(big, recipients=["feedback@example.com"], **send)
        assert too_big.value.code == 552

        with pytest.raises(aiosmtplib.SMTPDataError) as garbage:
            await aiosmtplib.send(fixture("garbage.eml"), recipients=["feedback@example.com"], **send)
        assert garbage.value.code == 554

        errors, reply = await aiosmtplib.send(fixture("auto_reply.eml"), recipients=["feedback@example.com"], **send)
        assert reply.startswith("2.0.0 OK auto_reply")

        # The listener survived all of it, says so, and still takes mail.
        assert intake.runtime.smtp_listener.serving
        async with intake.client() as http:
            assert (await http.get("/readyz")).status_code == 200
        errors, reply = await aiosmtplib.send(fixture("big5_quoted_printable.eml"), recipients=["feedback@example.com"], **send)
        assert reply.startswith("2.0.0 OK accepted")

        async def two_events() -> bool:
            return len(await received(kafka_bootstrap, settings)) >= 2

        await wait_until(two_events, timeout=20, what="two email events on the broker")
        events = await received(kafka_bootstrap, settings)

    assert len(events) == 2 and len({e.id for e in events}) == 2
    complaint_event = next(e for e in events if e.email.subject.startswith("投诉"))
    assert complaint_event.channel == "email" and complaint_event.source == "email-smtp"
    assert complaint_event.customer.name == "王建国" and complaint_event.customer.email == "wangjg1978@163.com"
    assert complaint_event.email.message_id == "<5f1c2a9e.3b2d.18f6a1c2e3d.Coremail.wangjg1978@163.com>"
    assert complaint_event.email.recipient == "Feedback@Example.com"
    assert [(a.filename, a.size) for a in complaint_event.email.attachments] == [("排队照片.jpg", 2048)]
    assert "大堂经理态度非常差" in complaint_event.text and "发自我的iPhone" not in complaint_event.text
    assert complaint_event.language == "zh"

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, reason, duplicates, via FROM intake.email_messages ORDER BY received_at")
    finally:
        await conn.close()
    assert [(r["status"], r["duplicates"], r["via"]) for r in rows] == [
        ("accepted", 1, "smtp"), ("rejected", 0, "smtp"), ("auto_reply", 0, "smtp"), ("accepted", 0, "smtp")
    ]
    assert rows[1]["reason"] == "not an RFC 822 message: no header fields"


async def test_post_raw_email(service_env, kafka_bootstrap):
    settings = intake_settings(service_env, intake_email_max_bytes=128 * 1024)
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        def post(raw: bytes, content_type: str = "message/rfc822"):
            return http.post("/v1/email", content=raw, headers={"Content-Type": content_type})

        html_mail = fixture("utf8_html_only_reply.eml")
        first = await post(html_mail)
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "accepted"
        again = await post(html_mail)
        assert again.status_code == 200 and again.json() | {"reason": None} == {
            "status": "duplicate", "id": first.json()["id"], "message_id": "<CAOq1uX9+html-0001@mail.gmail.com>",
            "first_status": "accepted", "reason": None,
        }

        bounce = await post(fixture("dsn_bounce.eml"))
        assert bounce.status_code == 200 and bounce.json()["status"] == "auto_reply"

        garbage = await post(fixture("garbage.eml"))
        assert garbage.status_code == 422 and garbage.json()["status"] == "rejected"
        garbage_again = await post(fixture("garbage.eml"))
        assert garbage_again.status_code == 422
        assert (garbage_again.json()["status"], garbage_again.json()["first_status"]) == ("duplicate", "rejected")

        assert (await post(html_mail, "text/plain")).status_code == 415
        assert (await post(b"From: a@example.com\r\n\r\n" + b"x" * (130 * 1024))).status_code == 413
        no_key = await http.post("/v1/email", content=html_mail, headers={"Content-Type": "message/rfc822", "X-API-Key": ""})
        assert no_key.status_code == 401

        async def arrived() -> bool:
            return len(await received(kafka_bootstrap, settings)) >= 1

        await wait_until(arrived, timeout=20, what="the email event on the broker")
        events = await received(kafka_bootstrap, settings)

    [event] = events
    assert event.id == first.json()["id"]
    assert event.email.subject == "Re: Delayed flight – lost luggage"
    assert "delayed four hours" in event.text and "reference is 55-1234" not in event.text
    assert event.customer.name == "Emily Carter" and event.language == "en"
    assert event.source == "dev"


async def test_mail_records_expire_after_their_retention(service_env):
    settings = intake_settings(service_env, intake_email_record_days=30)
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        mail = fixture("utf8_html_only_reply.eml")
        first = await http.post("/v1/email", content=mail, headers={"Content-Type": "message/rfc822"})
        assert first.status_code == 202, first.text
        pool = intake.runtime.pool
        await intake.runtime.prune_once()  # a fresh record stays: the retry is still a duplicate
        retry = await http.post("/v1/email", content=mail, headers={"Content-Type": "message/rfc822"})
        assert retry.json()["status"] == "duplicate"
        await pool.execute("UPDATE email_messages SET received_at = now() - interval '31 days'")
        await intake.runtime.prune_once()
        assert await pool.fetchval("SELECT count(*) FROM email_messages") == 0
        later = await http.post("/v1/email", content=mail, headers={"Content-Type": "message/rfc822"})
    assert later.status_code == 202 and later.json()["status"] == "accepted"
