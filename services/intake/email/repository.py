"""SQL of the email channel (the ``email_messages`` table)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class EmailRecord:
    message_id: str
    status: str
    reason: str | None
    feedback_id: str | None


async def record_first(
    conn: asyncpg.Connection,
    *,
    message_id: str,
    sender: str,
    status: str,
    reason: str | None,
    feedback_id: str | None,
    via: str,
    size_bytes: int,
    attachments: int,
) -> bool:
    """Record a message; False when it was seen before (nothing changed then): the same Message-ID
    from the same sender, or a record from before senders were kept (``sender = ''``)."""
    inserted = await conn.fetchval(
        """
        INSERT INTO email_messages (message_id, sender, status, reason, feedback_id, via, size_bytes, attachments)
        SELECT $1, $2, $3, $4, $5, $6, $7, $8
        WHERE NOT EXISTS (SELECT 1 FROM email_messages WHERE message_id = $1 AND sender = '')
        ON CONFLICT (message_id, sender) DO NOTHING
        RETURNING true
        """,
        message_id, sender, status, reason, feedback_id, via, size_bytes, attachments,
    )
    return bool(inserted)


async def record_duplicate(conn: asyncpg.Connection, message_id: str, sender: str) -> EmailRecord:
    """Count a repeat delivery and return what the first one became."""
    row = await conn.fetchrow(
        """
        UPDATE email_messages SET duplicates = duplicates + 1, last_duplicate_at = now()
        WHERE message_id = $1 AND sender IN ($2, '')
        RETURNING message_id, status, reason, feedback_id
        """,
        message_id, sender,
    )
    return EmailRecord(**dict(row))


async def find(conn: asyncpg.Connection | asyncpg.Pool, message_id: str, sender: str = "") -> EmailRecord | None:
    row = await conn.fetchrow(
        "SELECT message_id, status, reason, feedback_id FROM email_messages WHERE message_id = $1 AND sender = $2",
        message_id, sender,
    )
    return EmailRecord(**dict(row)) if row else None
