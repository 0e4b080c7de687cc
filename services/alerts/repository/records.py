"""Silences (with their audit trail) and manager tokens' records: the part of
:class:`~services.alerts.repository.AlertsRepository` that administration writes; and the
row helpers both parts use."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from operator import attrgetter
from typing import Any

import asyncpg

from services.alerts.domain import ManagerToken
from services.alerts.silences import Silence, SilenceEvent


def columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def row_values(cls: type) -> attrgetter:
    """A row's values in column order (no deep copy, unlike ``dataclasses.astuple``)."""
    return attrgetter(*columns(cls))


def json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_SILENCE_SELECT = ", ".join(columns(Silence))
_TOKEN_SELECT = ", ".join(columns(ManagerToken))
_TOKEN_VALUES = row_values(ManagerToken)


def _silence(row: asyncpg.Record) -> Silence:
    return Silence(**(dict(row) | {"matchers": json.loads(row["matchers"])}))


class SilencesAndTokens:
    conn: asyncpg.Connection

    async def _one(self, sql: str, key: str, for_update: bool) -> asyncpg.Record | None:
        """The row ``sql`` selects by ``key``, locked until the transaction ends if ``for_update``."""
        return await self.conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), key)

    async def active_silences(self, *, now: datetime) -> list[Silence]:
        rows = await self.conn.fetch(
            f"SELECT {_SILENCE_SELECT} FROM silences WHERE starts_at <= $1 AND ends_at > $1 ORDER BY created_at", now
        )
        return [_silence(r) for r in rows]

    async def list_silences(self, *, now: datetime, include_expired: bool) -> list[Silence]:
        rows = await self.conn.fetch(
            f"""SELECT {_SILENCE_SELECT} FROM silences WHERE $2 OR ends_at > $1
                ORDER BY created_at DESC LIMIT 500""",
            now, include_expired,
        )
        return [_silence(r) for r in rows]

    async def get_silence(self, silence_id: str, *, for_update: bool = False) -> Silence | None:
        row = await self._one(f"SELECT {_SILENCE_SELECT} FROM silences WHERE silence_id = $1", silence_id, for_update)
        return _silence(row) if row else None

    async def save_silences(self, silences: list[Silence]) -> None:
        if silences:
            await self.conn.executemany(
                f"""INSERT INTO silences ({_SILENCE_SELECT}) VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9)
                    ON CONFLICT (silence_id) DO UPDATE SET ends_at = EXCLUDED.ends_at, expired_by = EXCLUDED.expired_by""",
                [(s.silence_id, json.dumps(s.matchers, ensure_ascii=False), s.starts_at, s.ends_at, s.created_by, s.comment,
                  s.created_at, s.expired_by, s.include_escalations) for s in silences],
            )

    async def add_silence_events(self, events: list[SilenceEvent]) -> None:
        if events:
            await self.conn.executemany(
                "INSERT INTO silence_events (silence_id, at, action, actor, detail) VALUES ($1, $2, $3, $4, $5::jsonb)",
                [(e.silence_id, e.at, e.action, e.actor, json.dumps(e.detail, ensure_ascii=False, default=json_default))
                 for e in events],
            )

    async def silence_events(self, silence_id: str) -> list[SilenceEvent]:
        rows = await self.conn.fetch(
            "SELECT silence_id, at, action, actor, detail FROM silence_events WHERE silence_id = $1 ORDER BY id",
            silence_id,
        )
        return [SilenceEvent(**(dict(r) | {"detail": json.loads(r["detail"])})) for r in rows]

    async def get_token(self, token_id: str, *, for_update: bool = False) -> ManagerToken | None:
        row = await self._one(f"SELECT {_TOKEN_SELECT} FROM manager_tokens WHERE token_id = $1", token_id, for_update)
        return ManagerToken(**(dict(row) | {"teams": list(row["teams"])})) if row else None

    async def save_tokens(self, tokens: list[ManagerToken]) -> None:
        if tokens:
            await self.conn.executemany(
                f"""INSERT INTO manager_tokens ({_TOKEN_SELECT}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                    ON CONFLICT (token_id) DO UPDATE SET revoked_at = EXCLUDED.revoked_at,
                                                         revoked_by = EXCLUDED.revoked_by""",
                [_TOKEN_VALUES(t) for t in tokens],
            )

    async def token_usable(self, token_id: str, email: str) -> bool:
        return bool(await self.conn.fetchval(
            "SELECT true FROM manager_tokens WHERE token_id = $1 AND email = $2 AND revoked_at IS NULL",
            token_id, email,
        ))
