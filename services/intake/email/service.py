"""The email channel's use case: one raw message in, at most one feedback out.

The dedupe record and the feedback event are written in ONE transaction (the
event through the outbox): a Message-ID is either recorded together with its
event or not at all, so a crash can neither lose a mail we answered 250 for
nor publish one twice. Mail is low-volume; the relay publishes within
milliseconds (it is woken by NOTIFY).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg
from pydantic import ValidationError

from services.intake.email import repository
from services.intake.email.parse import FEEDBACK, REJECTED, parse_email
from services.intake.service import to_event
from shared.errors import NotDurable
from shared.outbox import enqueue

logger = logging.getLogger(__name__)

# Feedback ids of mail derive from the Message-ID. Never change it.
EMAIL_NAMESPACE = uuid.UUID("0d6f3c1e-8a52-5b4f-b1c7-7e2a9d4c6f80")

DUPLICATE = "duplicate"


@dataclass(frozen=True)
class EmailOutcome:
    status: str  # accepted | auto_reply | rejected | duplicate
    message_id: str
    feedback_id: str | None = None
    reason: str | None = None
    first_status: str | None = None  # for a duplicate: what the first delivery became


async def receive_email(
    raw: bytes, *, pool: asyncpg.Pool, topic: str, via: str, source: str, recipient: str | None = None
) -> EmailOutcome:
    """Record one message and, when it is feedback, enqueue its ``feedback.received.v1`` event.

    Raises only when the database is unavailable (the sender should retry)."""
    mail = parse_email(raw)
    status, reason, feedback_id, event = mail.status, mail.reason, None, None
    if status == FEEDBACK:
        try:
            feedback = mail.to_feedback(recipient=recipient)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            status, reason = REJECTED, f"invalid {where or 'message'}: {first.get('msg', 'invalid')}"[:500]
        else:
            feedback_id = str(uuid.uuid5(EMAIL_NAMESPACE, mail.key))
            event = to_event(feedback, feedback_id=feedback_id, source=source)
    try:
        outcome = await _record(pool, mail.key, status, reason, feedback_id, via, len(raw), len(mail.attachments), event, topic)
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError) as exc:
        raise NotDurable(f"email cannot be recorded: {exc!r}") from exc
    logger.info(
        "email received",
        extra={
            "status": outcome.status, "feedback_id": outcome.feedback_id, "via": via, "size": len(raw),
            "text_length": len(mail.text), "attachments": len(mail.attachments), "reason": outcome.reason,
        },
    )
    return outcome


async def _record(pool, key, status, reason, feedback_id, via, size, attachments, event, topic) -> EmailOutcome:  # noqa: ANN001
    async with pool.acquire(timeout=5) as conn, conn.transaction():
        first = await repository.record_first(
            conn, message_id=key, status=status, reason=reason, feedback_id=feedback_id, via=via,
            size_bytes=size, attachments=attachments,
        )
        if not first:
            earlier = await repository.record_duplicate(conn, key)
            return EmailOutcome(
                DUPLICATE, key, feedback_id=earlier.feedback_id, reason=earlier.reason, first_status=earlier.status
            )
        if event is not None:
            await enqueue(conn, [(topic, event)])
        return EmailOutcome(status, key, feedback_id=feedback_id, reason=reason)
