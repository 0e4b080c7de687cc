"""Intake's SQL (API keys). Feedback itself never touches the database on the
hot path; the outbox (shared plumbing) takes it only while Kafka is down."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg


@dataclass(frozen=True)
class KeyRow:
    id: str
    name: str
    secret_sha256: bytes
    channels: list[str]
    origins: list[str]
    rate_per_second: float | None
    burst: int | None
    created_at: datetime
    revoked_at: datetime | None


class DuplicateKeyName(Exception):
    """An active key with this name exists already."""


_COLUMNS = "id, name, secret_sha256, channels, origins, rate_per_second, burst, created_at, revoked_at"


async def active_keys(db: asyncpg.Pool | asyncpg.Connection) -> list[KeyRow]:
    rows = await db.fetch(f"SELECT {_COLUMNS} FROM api_keys WHERE revoked_at IS NULL")
    return [KeyRow(**dict(r)) for r in rows]


async def all_keys(db: asyncpg.Pool | asyncpg.Connection, *, include_revoked: bool) -> list[KeyRow]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM api_keys WHERE $1 OR revoked_at IS NULL ORDER BY name, created_at", include_revoked
    )
    return [KeyRow(**dict(r)) for r in rows]


async def insert_key(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    key_id: str,
    name: str,
    secret_sha256: bytes,
    channels: list[str],
    origins: list[str],
    rate_per_second: float | None,
    burst: int | None,
) -> None:
    try:
        await db.execute(
            """INSERT INTO api_keys (id, name, secret_sha256, channels, origins, rate_per_second, burst)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            key_id, name, secret_sha256, channels, origins, rate_per_second, burst,
        )
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateKeyName(name) from exc


async def upsert_key(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    key_id: str,
    name: str,
    secret_sha256: bytes,
    channels: list[str],
    origins: list[str],
) -> None:
    """Create or refresh an unlimited key under a fixed id (the dev key)."""
    await db.execute(
        """INSERT INTO api_keys (id, name, secret_sha256, channels, origins)
           VALUES ($1, $2, $3, $4, $5)
           ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, secret_sha256 = EXCLUDED.secret_sha256,
               channels = EXCLUDED.channels, origins = EXCLUDED.origins,
               rate_per_second = NULL, burst = NULL, revoked_at = NULL
           WHERE api_keys.secret_sha256 IS DISTINCT FROM EXCLUDED.secret_sha256
              OR api_keys.revoked_at IS NOT NULL OR api_keys.rate_per_second IS NOT NULL
              OR api_keys.channels IS DISTINCT FROM EXCLUDED.channels
              OR api_keys.origins IS DISTINCT FROM EXCLUDED.origins""",
        key_id, name, secret_sha256, channels, origins,
    )


async def revoke_key(db: asyncpg.Pool | asyncpg.Connection, ident: str) -> list[str]:
    """Revoke the active key with this id or name; returns the ids revoked."""
    rows = await db.fetch(
        "UPDATE api_keys SET revoked_at = now() WHERE revoked_at IS NULL AND (id = $1 OR name = $1) RETURNING id",
        ident,
    )
    return [r["id"] for r in rows]
