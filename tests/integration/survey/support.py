"""Helpers for the survey integration tests: an SMTP server collecting mail and a topic reader."""

from __future__ import annotations

import email
import email.policy
import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from keymoment.devstack.ports import free_port
from shared.contracts import SurveyRequested
from shared.events import SURVEY_REQUESTED, Envelope
from tests.support.kafka import read_topic  # noqa: F401  (re-exported for the tests)


class CollectingSmtp:
    """aiosmtpd handler keeping every message; ``refuse_first`` answers that many DATA commands with 451."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.recipients: list[list[str]] = []
        self.refused = 0
        self.port = 0
        self._refuse_first = refuse_first

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        if self.refused < self._refuse_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        data = envelope.original_content or envelope.content
        self.raw.append(data)
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(data, policy=email.policy.default))
        return "250 OK"


class SmtpServer:
    def __init__(self, handler: CollectingSmtp) -> None:
        self.handler = handler
        self.port = handler.port = free_port()
        self._controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> CollectingSmtp:
        self._controller.start()
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


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
    return Envelope.new(SURVEY_REQUESTED, data, source="/alerts", key=f"alert:{alert_id}", id=event_id)


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+/s/recovery\?t=[A-Za-z0-9_.\-]+", body)
    assert match, "no survey link in the plain-text part"
    return match.group(0)


