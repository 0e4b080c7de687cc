"""Managers' verdicts: the part of :class:`~services.alerts.repository.AlertsRepository` that
records them, shows an alert's, and reads the current ones for the trainer's export."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from services.alerts.domain import Verdict
from services.alerts.repository.records import columns, json_default

_VERDICT_COLUMNS = columns(Verdict)
_VERDICT_SELECT = ", ".join(_VERDICT_COLUMNS)


def _verdict(row: asyncpg.Record) -> Verdict:
    return Verdict(**(dict(row) | {"score": json.loads(row["score"])}))


class VerdictRecords:
    conn: asyncpg.Connection

    async def add_verdicts(self, verdicts: list[Verdict]) -> None:
        """Each new verdict replaces the current one of its feedback (which stays, with ``replaced_at``)."""
        if not verdicts:
            return
        await self.conn.execute(
            """UPDATE alert_verdicts v SET replaced_at = n.decided_at
               FROM unnest($1::text[], $2::timestamptz[]) AS n (feedback_id, decided_at)
               WHERE v.feedback_id = n.feedback_id AND v.replaced_at IS NULL""",
            [v.feedback_id for v in verdicts], [v.decided_at for v in verdicts],
        )
        await self.conn.execute(
            f"""INSERT INTO alert_verdicts ({_VERDICT_SELECT})
                SELECT {_VERDICT_SELECT} FROM jsonb_populate_recordset(NULL::alert_verdicts, $1::jsonb)""",
            json.dumps([{c: getattr(v, c) for c in _VERDICT_COLUMNS} for v in verdicts], default=json_default,
                       ensure_ascii=False),
        )

    async def alert_verdicts(self, alert_id: str) -> list[Verdict]:
        rows = await self.conn.fetch(
            f"SELECT {_VERDICT_SELECT} FROM alert_verdicts WHERE alert_id = $1 ORDER BY decided_at, verdict_id",
            alert_id,
        )
        return [_verdict(r) for r in rows]

    async def current_verdicts(self, *, since: datetime | None = None, batch: int = 500) -> AsyncIterator[Verdict]:
        """Every current verdict on a feedback with text (decided at or after ``since``), oldest
        first, read in batches through a cursor (call inside a transaction)."""
        cursor = self.conn.cursor(
            f"""SELECT {_VERDICT_SELECT} FROM alert_verdicts
                WHERE replaced_at IS NULL AND btrim(text) <> '' AND ($1::timestamptz IS NULL OR decided_at >= $1)
                ORDER BY decided_at, verdict_id""",
            since, prefetch=batch,
        )
        async for row in cursor:
            yield _verdict(row)
