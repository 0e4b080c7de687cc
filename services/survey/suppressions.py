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
    return await suppress_hashes(conn, [address_hash(key, address)], reason=reason, at=at, source=source) == 1


async def suppress_hashes(conn: asyncpg.Connection, hashes: list[str], *, reason: Reason, at: datetime,
                          source: str | None = None) -> int:
    """List addresses known only by their pseudonym (an erasure names its customer that way);
    how many were not listed before."""
    return await conn.fetchval(
        """WITH added AS (
               INSERT INTO suppressions (address_hash, reason, created_at, source)
               SELECT DISTINCT h, $2::text, $3::timestamptz, $4::text FROM unnest($1::text[]) AS h
               ON CONFLICT (address_hash) DO NOTHING RETURNING 1)
           SELECT count(*) FROM added""",
        hashes, reason, at, source,
    )


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
