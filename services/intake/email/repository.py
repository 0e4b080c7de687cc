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


# --- privacy: senders are kept as pseudonyms (shared.privacy) ------------------------------------------------
async def erase_senders(conn: asyncpg.Connection, senders: list[str]) -> int:
    """Unlink these senders' (pseudonyms') records from them: the record keeps recognising its
    Message-ID from any sender (``sender = ''``, like a record from before senders were kept), or
    goes when such a record exists already. Returns the records changed or deleted."""
    return await conn.fetchval(
        """
        WITH matched AS (
            SELECT e.message_id, e.sender,
                   row_number() OVER (PARTITION BY e.message_id ORDER BY e.sender) AS n,
                   EXISTS (SELECT 1 FROM email_messages o WHERE o.message_id = e.message_id AND o.sender = '') AS taken
            FROM email_messages e WHERE e.sender = ANY($1::text[])),
        gone AS (
            DELETE FROM email_messages e USING matched m
            WHERE e.message_id = m.message_id AND e.sender = m.sender AND (m.taken OR m.n > 1) RETURNING 1),
        kept AS (
            UPDATE email_messages e SET sender = '' FROM matched m
            WHERE e.message_id = m.message_id AND e.sender = m.sender AND NOT m.taken AND m.n = 1 RETURNING 1)
        SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM kept)
        """,
        senders,
    )


async def plaintext_senders(conn: asyncpg.Connection, *, limit: int) -> list[tuple[str, str]]:
    """``(message_id, sender)`` of records written before senders were pseudonymised (an address
    has an ``@``, a pseudonym never), locked for the caller's transaction."""
    rows = await conn.fetch(
        """SELECT message_id, sender FROM email_messages WHERE position('@' IN sender) > 0
           LIMIT $1 FOR UPDATE SKIP LOCKED""",
        limit,
    )
    return [(r["message_id"], r["sender"]) for r in rows]


async def replace_senders(conn: asyncpg.Connection, rows: list[tuple[str, str, str]]) -> None:
    """``(message_id, old sender, new sender)``: each record's sender replaced (a record already
    kept under the new sender wins; the old one goes)."""
    ids, old, new = (list(c) for c in zip(*rows, strict=True)) if rows else ([], [], [])
    await conn.execute(
        """DELETE FROM email_messages e USING unnest($1::text[], $2::text[], $3::text[]) AS m (message_id, old, new)
           WHERE e.message_id = m.message_id AND e.sender = m.old
             AND EXISTS (SELECT 1 FROM email_messages k WHERE k.message_id = m.message_id AND k.sender = m.new)""",
        ids, old, new,
    )
    await conn.execute(
        """UPDATE email_messages e SET sender = m.new
           FROM unnest($1::text[], $2::text[], $3::text[]) AS m (message_id, old, new)
           WHERE e.message_id = m.message_id AND e.sender = m.old""",
        ids, old, new,
    )
