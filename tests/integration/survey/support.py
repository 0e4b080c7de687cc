"""Helpers for the survey integration tests: an SMTP server collecting mail and a topic reader."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from shared.contracts import SurveyRequested
from shared.events import SURVEY_REQUESTED, Envelope, event_source
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
