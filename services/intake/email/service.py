"""The email channel's use case: one raw message in, at most one feedback out.

The dedupe record and the feedback event are written in ONE transaction (the
event through the outbox): a message is either recorded together with its
event or not at all, so a crash can neither lose a mail we answered 250 for
nor publish one twice. Mail is low-volume; the relay publishes within
milliseconds (it is woken by NOTIFY).

A message is parsed in a worker process within a time budget (see
:mod:`services.intake.email.worker`); one over the budget is recorded and
refused for good, since it would take as long again.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
from pydantic import ValidationError

from services.intake.email import repository
from services.intake.email.parse import FEEDBACK, REJECTED, ParsedEmail, raw_key
from services.intake.email.worker import ParseTimeout
from services.intake.service import to_event
from shared.errors import NotDurable
from shared.outbox import enqueue
from shared.privacy import pseudonym

logger = logging.getLogger(__name__)

# Feedback ids of mail derive from the dedupe key (Message-ID and sender, or the bytes' hash).
# Never change it: a re-delivery must map to the same id.
EMAIL_NAMESPACE = uuid.UUID("0d6f3c1e-8a52-5b4f-b1c7-7e2a9d4c6f80")

DUPLICATE = "duplicate"

Parse = Callable[[bytes], Awaitable[ParsedEmail]]


@dataclass(frozen=True)
class EmailOutcome:
    status: str  # accepted | auto_reply | rejected | duplicate
    message_id: str
    feedback_id: str | None = None
    reason: str | None = None
    first_status: str | None = None  # for a duplicate: what the first delivery became


def feedback_id_for(mail: ParsedEmail) -> str:
    name = f"{mail.key}\n{mail.key_sender}" if mail.key_sender else mail.key
    return str(uuid.uuid5(EMAIL_NAMESPACE, name))


async def _parsed(raw: bytes, parse: Parse) -> ParsedEmail:
    try:
        return await parse(raw)
    except ParseTimeout as exc:
        key = await asyncio.to_thread(raw_key, raw)  # hashing megabytes releases the GIL
        return ParsedEmail(status=REJECTED, key=key, reason=f"too complex to read: {exc}", size=len(raw))


def recorded_sender(privacy_key: bytes, mail: ParsedEmail) -> str:
    """The sender as the dedupe record keeps it: its pseudonym, never the address ('' without one)."""
    return pseudonym(privacy_key, "email", mail.key_sender) if mail.key_sender else ""


async def receive_email(
    raw: bytes, *, parse: Parse, pool: asyncpg.Pool, topic: str, via: str, source: str, privacy_key: bytes,
    recipient: str | None = None,
) -> EmailOutcome:
    """Record one message and, when it is feedback, enqueue its ``feedback.received.v1`` event.

    Raises :class:`NotDurable` when the database is unavailable and
    :class:`~services.intake.email.worker.ParserBusy` when every parser is busy (the sender should
    retry either way)."""
    mail = await _parsed(raw, parse)
    status, reason, feedback_id, event = mail.status, mail.reason, None, None
    if status == FEEDBACK:
        try:
            feedback = mail.to_feedback(recipient=recipient)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            status, reason = REJECTED, f"invalid {where or 'message'}: {first.get('msg', 'invalid')}"[:500]
        else:
            feedback_id = feedback_id_for(mail)
            event = to_event(feedback, feedback_id=feedback_id, source=source, privacy_key=privacy_key)
    try:
        outcome = await _record(pool, mail, recorded_sender(privacy_key, mail), status, reason, feedback_id, via,
                                len(raw), event, topic)
    except asyncpg.DataError as exc:  # a value the database refuses: sending it again cannot help
        logger.warning("email refused by the database", extra={"size": len(raw), "error": type(exc).__name__})
        return EmailOutcome(REJECTED, mail.key, reason=f"cannot be recorded: {type(exc).__name__}")
    except (OSError, TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
            asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError) as exc:
        raise NotDurable(f"email cannot be recorded: {exc!r}") from exc
    logger.info(
        "email received",
        extra={
            "status": outcome.status, "feedback_id": outcome.feedback_id, "via": via, "size": len(raw),
            "text_length": len(mail.text), "attachments": len(mail.attachments), "reason": outcome.reason,
        },
    )
    return outcome


async def _record(pool, mail, sender, status, reason, feedback_id, via, size, event, topic) -> EmailOutcome:  # noqa: ANN001
    async with pool.acquire(timeout=5) as conn, conn.transaction():
        first = await repository.record_first(
            conn, message_id=mail.key, sender=sender, status=status, reason=reason,
            feedback_id=feedback_id, via=via, size_bytes=size, attachments=len(mail.attachments),
        )
        if not first:
            earlier = await repository.record_duplicate(conn, mail.key, sender)
            return EmailOutcome(
                DUPLICATE, mail.key, feedback_id=earlier.feedback_id, reason=earlier.reason,
                first_status=earlier.status,
            )
        if event is not None:
            await enqueue(conn, [(topic, event)])
        return EmailOutcome(status, mail.key, feedback_id=feedback_id, reason=reason)
