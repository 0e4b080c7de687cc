"""Helpers for the survey integration tests: an SMTP server collecting mail and a topic reader."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from urllib.parse import urlsplit

from services.survey.settings import SurveySettings
from shared.contracts import SurveyRequested
from shared.events import SURVEY_REQUESTED, Envelope, event_source
from shared.kafka import Publisher
from tests.integration.mail.smtp import SmtpServer  # noqa: F401  (re-exported for the tests)
from tests.integration.mail.smtp import SmtpSink as CollectingSmtp  # noqa: F401
from tests.support.kafka import read_topic  # noqa: F401  (re-exported for the tests)


def survey_requested(*, alert_id: str | None = "alert-1", email_addr: str | None = "li.wei@example.cn",
                     name: str | None = "李伟", language: str | None = "zh-CN", request_id: str | None = None,
                     event_id: str | None = None) -> Envelope:
    data = SurveyRequested(
        request_id=request_id or str(uuid.uuid4()),
        kind="recovery",
        alert_id=alert_id,
        customer={"id": "c-42", "name": name, "email": email_addr},
        language=language,
        location="PVG T2",
        touchpoint="check-in",
        requested_at=datetime.now(UTC),
    )
    return Envelope.new(SURVEY_REQUESTED, data, source=event_source("alerts"), key=f"alert:{alert_id}", id=event_id)


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+/s/recovery\?t=[A-Za-z0-9_.\-]+", body)
    assert match, "no survey link in the plain-text part"
    return match.group(0)


# --- issue 15: invitations, contact rules, versions ---------------------------------------
ADMIN_TOKEN = "test-admin-token-123"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PUBLIC_BASE = "https://survey.example.cn"


def bilingual(zh: str, en: str) -> dict:
    return {"zh": zh, "en": en}


def post_visit(survey_id: str = "post-visit", **extra) -> dict:
    """A survey as a retailer sends after a visit: MOT faces, CES, a choice and a comment."""
    return {
        "id": survey_id,
        "title": bilingual("本次到店体验如何？", "How was your visit?"),
        "access": "link",
        "location": "上海南京路店",
        "touchpoint": "checkout",
        "questions": [
            {"id": "feeling", "type": "mot", "required": True, "label": bilingual("您的感受如何？", "How did it feel?")},
            {"id": "effort", "type": "ces", "label": bilingual("办理是否方便？", "How easy was it?")},
            {"id": "reason", "type": "choice", "label": bilingual("主要原因", "The main reason"), "options": [
                {"id": "staff", "label": bilingual("店员", "Staff")},
                {"id": "queue", "label": bilingual("排队", "Queueing")},
                {"id": "price", "label": bilingual("价格", "Price")}]},
            {"id": "comment", "type": "text", "label": bilingual("还有什么想说的？", "Anything else?")},
        ],
        **extra,
    }


def survey_settings(service_env: dict, smtp_port: int | None = None, **extra) -> SurveySettings:
    """Survey's settings for a test: the admin token above, quiet hours off (``service_env``) unless asked for."""
    values = {"admin_token": ADMIN_TOKEN, "survey_public_base_url": PUBLIC_BASE,
              "mail_poll_seconds": 0.2, "smtp_from": "Keymoment 客户关怀 <care@keymoment.example>"}
    if smtp_port is not None:
        values["smtp_port"] = smtp_port
    return SurveySettings(**(service_env | values | extra))


def invitation(survey_id: str, email: str | None, *, key: str | None = None, customer_id: str | None = None,
               **extra) -> dict:
    customer = {"name": "王芳"} | ({"email": email} if email else {}) | ({"id": customer_id} if customer_id else {})
    return {"survey_id": survey_id, "customer": customer, "locale": "zh-CN", **({"key": key} if key else {}), **extra}


def path_of(url: str) -> str:
    """The path and query of a link (the test talks to the service's own address)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def survey_link(message: EmailMessage, survey_id: str) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(rf"https?://\S+/s/{re.escape(survey_id)}\?t=[A-Za-z0-9_.\-]+", body)
    assert match, "no survey link in the plain-text part"
    return match.group(0)


def unsubscribe_link(message: EmailMessage) -> str:
    value = str(message["List-Unsubscribe"])
    match = re.fullmatch(r"<(https?://\S+/u/[A-Za-z0-9_.\-]+)>", value.strip())
    assert match, f"List-Unsubscribe is {value!r}"
    return match.group(1)


async def events_of(bootstrap: str, topic: str, at_least: int) -> list:
    """The payloads on a topic, once at least ``at_least`` arrived."""
    return [Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value).data
            for m in await read_topic(bootstrap, topic, at_least=at_least)]


async def publish(service_env: dict, *events: Envelope) -> None:
    """Put events on the test's topics, as their producers would."""
    publisher = Publisher(service_env["kafka_bootstrap_servers"], client_id="survey-test")
    await publisher.start()
    try:
        await publisher.publish([(service_env["kafka_topic_prefix"] + e.event_type.topic, e) for e in events])
    finally:
        await publisher.stop()
