"""The suppression list: addresses survey never writes to again (unsubscribed, bounced,
complained, erased). Stored as pseudonyms (``shared.privacy.pseudonym``), never as addresses.

The one place that reads and writes ``suppressions``; every sender path asks
:func:`is_suppressed` before inviting, and unsubscribe, bounce handling and erasure call
:func:`suppress`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import asyncpg

from shared.privacy import pseudonym

Reason = Literal["unsubscribed", "bounced", "complained", "erased", "manual"]


def address_hash(key: bytes, address: str) -> str:
    """The pseudonym an address is listed under."""
    return pseudonym(key, "email", address)


async def suppress(conn: asyncpg.Connection, key: bytes, address: str, *, reason: Reason, at: datetime,
                   source: str | None = None) -> bool:
    """List an address (idempotent: the first reason stays); True when it was not listed before."""
    return await conn.fetchval(
        """INSERT INTO suppressions (address_hash, reason, created_at, source) VALUES ($1, $2, $3, $4)
           ON CONFLICT (address_hash) DO NOTHING RETURNING true""",
        address_hash(key, address), reason, at, source,
    ) is True


async def suppressed(conn: asyncpg.Connection, key: bytes, addresses: list[str]) -> dict[str, Reason]:
    """Which of these addresses are listed, with their reason (one query for many)."""
    if not addresses:
        return {}
    hashes = {address_hash(key, a): a for a in addresses}
    rows = await conn.fetch("SELECT address_hash, reason FROM suppressions WHERE address_hash = ANY($1::text[])",
                            list(hashes))
    return {hashes[r["address_hash"]]: r["reason"] for r in rows}


async def is_suppressed(conn: asyncpg.Connection, key: bytes, address: str) -> Reason | None:
    return (await suppressed(conn, key, [address])).get(address)
