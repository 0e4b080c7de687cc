"""Helpers for the alerts integration tests: an SMTP server collecting mail, a
feedback producer, topic reader and database helpers."""

from __future__ import annotations

import contextlib
import email
import email.policy
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import asyncpg
from aiosmtpd.controller import Controller

from keymoment.devstack.ports import free_port
from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope
from shared.kafka import Publisher
from shared.privacy import DEV_PRIVACY_HASH_KEY
from tests.support.services import RunningService, running, wait_until
from tests.support.kafka import read_topic  # noqa: F401  (re-exported for the tests)


class CollectingSmtp:
    """aiosmtpd handler keeping every accepted message; ``refuse_first`` answers that many DATA with 451."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []
        self.refused = 0
        self._refuse_first = refuse_first

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        if self.refused < self._refuse_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        data = envelope.original_content or envelope.content
        self.recipients.append(sorted(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(data, policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m, r in zip(self.messages, self.recipients, strict=True) if address in r]


@contextlib.contextmanager
def smtp_server(refuse_first: int = 0):
    handler = CollectingSmtp(refuse_first)
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    handler.port = port
    try:
        yield handler
    finally:
        controller.stop()


def settings(service_env: dict, smtp: CollectingSmtp, **overrides: Any) -> AlertsSettings:
    # the mail sender looks for due mail every 0.2 s: a test moving a ManualClock needs no wake-up
    values = dict(smtp_host="127.0.0.1", smtp_port=smtp.port, alerts_scheduler_interval_seconds=0.1,
                  public_base_url="http://alerts.test", mail_poll_seconds=0.2)
    return AlertsSettings(**service_env, **{**values, **overrides})


@contextlib.asynccontextmanager
async def alerts_app(s: AlertsSettings, **kwargs: Any) -> AsyncIterator[RunningService]:
    async with running(create_app(s, **kwargs)) as service:
        yield service


def feedback(
    *, channel: str = "kiosk", text: str | None = None, rating: dict | None = None, location: str | None = None,
    touchpoint: str | None = None, customer: dict | None = None, language: str | None = None,
    survey: dict | None = None, feedback_id: str | None = None, source: str | None = None, **extra: Any,
) -> Envelope:
    """A ``feedback.received.v1`` event; its CloudEvents ``source`` is survey's for survey feedback
    (whose recovery answers alerts honours), else intake's."""
    data = FeedbackReceived(
        id=feedback_id or str(uuid.uuid4()), received_at=datetime.now(UTC), source="test", channel=channel,
        text=text, rating=rating, location=location, touchpoint=touchpoint, customer=customer, language=language,
        survey=survey, **extra,
    )
    source = source or ("/keymoment/survey" if channel == "survey" else "/keymoment/intake")
    return Envelope.new(FEEDBACK_RECEIVED, data, source=source, key=data.partition_key(DEV_PRIVACY_HASH_KEY.encode()))


@contextlib.asynccontextmanager
async def producer(s: AlertsSettings) -> AsyncIterator[Any]:
    publisher = Publisher(s.kafka_bootstrap_servers, client_id="alerts-test")
    await publisher.start()

    async def send(*events: Envelope) -> None:
        await publisher.publish([(s.topic(FEEDBACK_RECEIVED.topic), e) for e in events])

    try:
        yield send
    finally:
        await publisher.stop()


class Db:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def alerts(self) -> list[asyncpg.Record]:
        return await self.conn.fetch("SELECT * FROM alerts.alerts ORDER BY raised_at")

    async def alert_for(self, feedback_id: str) -> asyncpg.Record | None:
        return await self.conn.fetchrow(
            """SELECT a.* FROM alerts.alerts a JOIN alerts.alert_feedback f USING (alert_id)
               WHERE f.feedback_id = $1""", feedback_id)

    async def notifications(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        """The notifications with their delivery as the API shows it: ``status`` suppressed, or their
        mails' (sent when every one is, else the least settled), the most ``attempts`` of a mail, and
        ``message_ids`` (``message_id`` too when there is one mail)."""
        rows = await self.conn.fetch(
            """SELECT n.*,
                      CASE WHEN n.silence_id IS NOT NULL THEN 'suppressed'
                           WHEN count(m.mail_id) = 0 THEN 'pending'
                           WHEN bool_or(m.state = 'sending') THEN 'sending'
                           WHEN bool_or(m.state = 'pending') THEN 'pending'
                           WHEN bool_or(m.state = 'uncertain') THEN 'uncertain'
                           WHEN bool_or(m.state = 'failed') THEN 'failed'
                           ELSE 'sent' END AS status,
                      coalesce(max(m.attempts), 0) AS attempts, max(m.last_error) AS last_error,
                      min(m.next_attempt_at) AS next_attempt_at, max(m.sent_at) AS sent_at,
                      coalesce(array_agg(m.message_id ORDER BY m.message_id) FILTER (WHERE m.mail_id IS NOT NULL),
                               '{}') AS message_ids
               FROM alerts.notifications n
               LEFT JOIN alerts.mail_queue m ON m.purpose = 'alert_notification' AND m.ref = n.notification_id
               WHERE $1::text IS NULL OR n.alert_id = $1
               GROUP BY n.notification_id ORDER BY n.created_at, n.level""",
            alert_id,
        )
        return [dict(r) | {"message_id": r["message_ids"][0] if len(r["message_ids"]) == 1 else None} for r in rows]

    async def mails(self, notification_id: str) -> list[asyncpg.Record]:
        """The notification's mails in the mail queue, one per recipient."""
        return await self.conn.fetch(
            """SELECT * FROM alerts.mail_queue WHERE purpose = 'alert_notification' AND ref = $1
               ORDER BY recipients""", notification_id)

    async def processed(self, event_id: str) -> bool:
        return bool(await self.conn.fetchval("SELECT true FROM alerts.processed_events WHERE event_id = $1", event_id))

    async def wait_alert(self, feedback_id: str, timeout: float = 20) -> asyncpg.Record:
        await wait_until(lambda: self.alert_for(feedback_id), timeout=timeout, what=f"alert for {feedback_id}")
        return await self.alert_for(feedback_id)


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[Db]:
    conn = await asyncpg.connect(url)
    try:
        yield Db(conn)
    finally:
        await conn.close()


async def wait_mail(smtp: CollectingSmtp, count: int, timeout: float = 20) -> None:
    await wait_until(lambda: len(smtp.messages) >= count, timeout=timeout, what=f"{count} email(s)")


def plain(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()


def links_in(message: EmailMessage) -> dict[str, str]:
    """Link URL by its English label (Acknowledge, Explore, Resolve) from the plain-text part."""
    found = {}
    for line in plain(message).splitlines():
        match = re.match(r"^.+ / ([A-Za-z]+): (https?://\S+/l/\S+)$", line)
        if match:
            found[match.group(1)] = match.group(2)
    return found


def events_of(messages: list, model: type) -> list:
    return [Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value).data for m in messages]
