"""What intake keeps about customers, and how it is erased.

Intake passes feedback on (Kafka, or its outbox while Kafka is away) and keeps one record per
received mail (``email_messages``: Message-ID, outcome, feedback id, the sender as a pseudonym;
never the mail). An erasure unlinks the customer's mail records from them and drops their events
still in the outbox (:func:`shared.privacy.erasure.apply`).
"""

from __future__ import annotations

import logging

import asyncpg

from services.intake.email import repository
from shared.db import in_batches
from shared.privacy import pseudonym
from shared.privacy.erasure import Erasure

logger = logging.getLogger(__name__)


async def erase(conn: asyncpg.Connection, erasure: Erasure) -> None:
    """The customer's mail records (by sender pseudonym) keep their Message-ID, not their sender."""
    senders = sorted(s for s in erasure.subjects if s.startswith("email:"))
    erasure.count("email_messages", await repository.erase_senders(conn, senders))


async def pseudonymise_senders(pool: asyncpg.Pool, key: bytes, *, batch: int = 500) -> int:
    """Replace the addresses of mail records written before senders were pseudonymised (an
    upgrade step run at start, before the listener; replicas share the work)."""
    async def step(conn: asyncpg.Connection) -> int:
        rows = await repository.plaintext_senders(conn, limit=batch)
        await repository.replace_senders(
            conn, [(message_id, sender, pseudonym(key, "email", sender)) for message_id, sender in rows])
        return len(rows)

    done = await in_batches(pool, step)
    if done:
        logger.info("mail records' senders pseudonymised", extra={"records": done})
    return done
