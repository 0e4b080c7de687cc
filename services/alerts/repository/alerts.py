""":class:`AlertsRepository`: what alerts reads and writes, over one asyncpg connection
(implements :class:`services.alerts.ports.Repository`; silences and manager tokens in ``records.py``,
managers' verdicts in ``verdicts.py``)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime

import asyncpg

from services.alerts.domain import Alert, AlertEvent, CustomerHistory, Delivery, FeedbackLink, Moment, Notification
from services.alerts.emails import PURPOSE, AlertMail
from services.alerts.ports import Writes
from services.alerts.repository.records import SilencesAndTokens, columns, json_default, row_values
from services.alerts.repository.verdicts import VerdictRecords
from services.alerts.unit_of_work import UnitOfWork
from shared import outbox
from shared.db import Statement, advisory_key
from shared.mail import queue
from shared.mail.queue import OutgoingMail

_ALERT_COLUMNS = columns(Alert)
_ALERT_SELECT = ", ".join(_ALERT_COLUMNS)
_LINK_COLUMNS = columns(FeedbackLink)
_LINK_SELECT = ", ".join(_LINK_COLUMNS)
_NOTIFICATION_COLUMNS = columns(Notification)
_NOTIFICATION_SELECT = ", ".join(_NOTIFICATION_COLUMNS)
_EVENT_COLUMNS = columns(AlertEvent)
_EVENT_SELECT = ", ".join(_EVENT_COLUMNS)
_MOMENT_COLUMNS = columns(Moment)
_MOMENT_VALUES = row_values(Moment)
_MUTABLE = [
    "severity", "status", "sla_due_at", "escalation_level", "sla_breached", "acknowledged_at", "acknowledged_by",
    "resolved_at", "resolved_by", "reopen_count", "feedback_count", "last_feedback_at", "last_notified_at",
    "updated_at", "state_version",
]


def _json_rows(rows: list, names: list[str]) -> str:
    """Rows as the JSON array ``jsonb_populate_recordset`` reads (one parameter for a whole table)."""
    return json.dumps([{c: getattr(r, c) for c in names} for r in rows], default=json_default, ensure_ascii=False)


def _alert(row: asyncpg.Record) -> Alert:
    values = {c: row[c] for c in _ALERT_COLUMNS}
    if values["customer"] is not None:
        values["customer"] = json.loads(values["customer"])
    values["recipients"] = list(values["recipients"])
    values["subjects"] = list(values["subjects"] or ())
    return Alert(**values)


def _link(row: asyncpg.Record) -> FeedbackLink:
    values = dict(row)
    for key in ("cues", "escalation", "rating"):
        values[key] = json.loads(values[key]) if values[key] is not None else None
    values["subjects"] = list(values["subjects"] or ())
    return FeedbackLink(**values)


def _moment(row: asyncpg.Record | None) -> Moment | None:
    if row is None:
        return None
    return Moment(**{c: row[c] for c in _MOMENT_COLUMNS} | {"subjects": tuple(row["subjects"] or ())})


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(**(dict(row) | {"recipients": list(row["recipients"])}))


@contextlib.asynccontextmanager
async def unit_of_work(pool: asyncpg.Pool) -> AsyncIterator[UnitOfWork]:
    """A unit of work in its own transaction (committed when the block ends without error)."""
    async with pool.acquire() as conn, conn.transaction():
        yield UnitOfWork(AlertsRepository(conn))


@contextlib.asynccontextmanager
async def reading(pool: asyncpg.Pool) -> AsyncIterator[AlertsRepository]:
    """The repository over a pooled connection, for reads outside a transaction."""
    async with pool.acquire() as conn:
        yield AlertsRepository(conn)


class AlertsRepository(SilencesAndTokens, VerdictRecords):
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    # ------------------------------------------------------------------------ alerts
    async def get_alert(self, alert_id: str, *, for_update: bool = False) -> Alert | None:
        row = await self._one(f"SELECT {_ALERT_SELECT} FROM alerts WHERE alert_id = $1", alert_id, for_update)
        return _alert(row) if row else None

    async def lock_group_keys(self, keys: list[str]) -> None:
        if keys:
            await self.conn.execute(
                "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys",
                sorted({advisory_key(f"alerts-group:{key}") for key in keys}),
            )

    async def open_alerts_for(
        self, *, customer_keys: list[str], places: list[tuple[str, str | None]], since: datetime
    ) -> list[Alert]:
        if not customer_keys and not places:
            return []
        rows = await self.conn.fetch(
            f"""SELECT {_ALERT_SELECT} FROM alerts WHERE alert_id IN (
                    SELECT alert_id FROM alerts WHERE customer_key = ANY($1::text[]) AND status <> 'resolved'
                    UNION
                    SELECT a.alert_id FROM unnest($2::text[], $3::text[]) AS p(location, touchpoint)
                    JOIN alerts a ON a.location = p.location AND a.touchpoint IS NOT DISTINCT FROM p.touchpoint
                    WHERE a.status <> 'resolved' AND a.last_feedback_at >= $4)
                ORDER BY alert_id FOR UPDATE""",
            customer_keys, [p[0] for p in places], [p[1] for p in places], since,
        )
        return [_alert(r) for r in rows]

    async def due_alerts(self, *, now: datetime, limit: int) -> list[Alert]:
        rows = await self.conn.fetch(
            f"""SELECT {_ALERT_SELECT} FROM alerts
                WHERE sla_due_at <= $1 ORDER BY sla_due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
            now, limit,
        )
        return [_alert(r) for r in rows]

    async def list_alerts(
        self, *, status: list[str] | None, severity: list[int] | None, location: str | None, team: str | None,
        since: datetime | None, teams: list[str] | None, limit: int, before: datetime | None,
    ) -> list[Alert]:
        rows = await self.conn.fetch(
            f"""SELECT {_ALERT_SELECT} FROM alerts
                WHERE ($1::text[] IS NULL OR status = ANY($1))
                  AND ($2::int[] IS NULL OR severity = ANY($2))
                  AND ($3::text IS NULL OR location = $3)
                  AND ($4::text IS NULL OR team = $4)
                  AND ($5::timestamptz IS NULL OR raised_at >= $5)
                  AND ($6::text[] IS NULL OR team = ANY($6))
                  AND ($8::timestamptz IS NULL OR raised_at < $8)
                ORDER BY raised_at DESC LIMIT $7""",
            status, severity, location, team, since, teams, limit, before,
        )
        return [_alert(r) for r in rows]

    async def open_counts(self) -> dict[int, int]:
        rows = await self.conn.fetch(
            "SELECT severity, count(*) AS n FROM alerts WHERE status <> 'resolved' GROUP BY severity"
        )
        return {r["severity"]: r["n"] for r in rows}

    # ------------------------------------------------------------------------ feedback, history, customers
    async def linked_feedback(self, feedback_ids: list[str]) -> set[str]:
        if not feedback_ids:
            return set()
        rows = await self.conn.fetch(
            "SELECT feedback_id FROM alert_feedback WHERE feedback_id = ANY($1::text[])", feedback_ids
        )
        return {r["feedback_id"] for r in rows}

    async def alert_feedback(self, alert_id: str) -> list[FeedbackLink]:
        rows = await self.conn.fetch(
            f"SELECT {_LINK_SELECT} FROM alert_feedback WHERE alert_id = $1 ORDER BY linked_at, feedback_id",
            alert_id,
        )
        return [_link(r) for r in rows]

    async def alert_events(self, alert_id: str) -> list[AlertEvent]:
        rows = await self.conn.fetch(
            """SELECT alert_id, at, action, actor, from_status, to_status, note FROM alert_events
               WHERE alert_id = $1 ORDER BY id""",
            alert_id,
        )
        return [AlertEvent(**r) for r in rows]

    async def customer_histories(
        self, *, customer_keys: list[str], since: datetime, exclude: list[str]
    ) -> dict[str, CustomerHistory]:
        if not customer_keys:
            return {}
        moments = """FROM unnest($1::text[]) AS k (key) CROSS JOIN LATERAL (
                         SELECT * FROM customer_moments
                         WHERE customer_key = k.key AND at >= $2 AND NOT feedback_id = ANY($3::text[])
                         ORDER BY {} LIMIT 1) m"""
        rows = await self.conn.fetch(
            f"""SELECT 'last' AS which, m.* {moments.format("at DESC")}
                UNION ALL
                SELECT 'worst' AS which, m.* {moments.format("mot, at DESC")}
                UNION ALL
                SELECT 'count' AS which, k.key, '',
                       (SELECT count(*)::int FROM customer_moments
                        WHERE customer_key = k.key AND at >= $2 AND NOT feedback_id = ANY($3::text[])),
                       '', NULL, NULL, NULL, NULL
                FROM unnest($1::text[]) AS k (key)""",
            list(dict.fromkeys(customer_keys)), since, exclude,
        )
        by: dict[str, dict[str, asyncpg.Record]] = {}
        for r in rows:
            by.setdefault(r["customer_key"], {})[r["which"]] = r
        return {key: CustomerHistory(last=_moment(found.get("last")), worst=_moment(found.get("worst")),
                                     count=found["count"]["mot"])
                for key, found in by.items()}

    # ------------------------------------------------------------------------ the hot path's writes
    async def write(self, writes: Writes) -> int:
        statement = Statement()
        if writes.moments:
            columns = list(zip(*map(_MOMENT_VALUES, writes.moments), strict=True))
            columns[-1] = [" ".join(subjects) for subjects in columns[-1]]  # pseudonyms never hold a space
            statement.cte("moments", """
                INSERT INTO customer_moments (customer_key, feedback_id, mot, channel, location, touchpoint, at, subjects)
                SELECT m.customer_key, m.feedback_id, m.mot, m.channel, m.location, m.touchpoint, m.at,
                       string_to_array(m.subjects, ' ')
                FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::timestamptz[],
                            $8::text[]) AS m (customer_key, feedback_id, mot, channel, location, touchpoint, at, subjects)
                ON CONFLICT DO NOTHING""", *columns)
        if writes.new_alerts:
            statement.cte("raised", f"""
                INSERT INTO alerts ({_ALERT_SELECT})
                SELECT {_ALERT_SELECT} FROM jsonb_populate_recordset(NULL::alerts, $1::jsonb)
                ON CONFLICT (feedback_id) DO NOTHING RETURNING alert_id""",
                _json_rows(writes.new_alerts, _ALERT_COLUMNS))
            statement.select("(SELECT count(*) FROM raised)::int AS raised")
        if writes.changed_alerts:
            statement.cte("changed", f"""
                UPDATE alerts a SET {", ".join(f"{c} = r.{c}" for c in _MUTABLE)}
                FROM jsonb_populate_recordset(NULL::alerts, $1::jsonb) AS r WHERE a.alert_id = r.alert_id""",
                _json_rows(writes.changed_alerts, ["alert_id", *_MUTABLE]))
        if writes.links:
            statement.cte("linked", f"""
                INSERT INTO alert_feedback ({_LINK_SELECT})
                SELECT {_LINK_SELECT} FROM jsonb_populate_recordset(NULL::alert_feedback, $1::jsonb)
                ON CONFLICT (feedback_id) DO NOTHING""",
                _json_rows(writes.links, _LINK_COLUMNS))
        if writes.events:
            statement.cte("stepped", f"""
                INSERT INTO alert_events ({_EVENT_SELECT})
                SELECT {_EVENT_SELECT} FROM jsonb_populate_recordset(NULL::alert_events, $1::jsonb) WITH ORDINALITY
                ORDER BY ordinality""",  # their ids (the history's order) in the order held
                _json_rows(writes.events, _EVENT_COLUMNS))
        if writes.notifications:
            statement.cte("notified", f"""
                INSERT INTO notifications ({_NOTIFICATION_SELECT})
                SELECT {_NOTIFICATION_SELECT} FROM jsonb_populate_recordset(NULL::notifications, $1::jsonb)
                ON CONFLICT DO NOTHING""",
                _json_rows(writes.notifications, _NOTIFICATION_COLUMNS))
        if writes.mails:
            queue.enqueueing(statement, [
                OutgoingMail(mail_id=m.mail_id, purpose=PURPOSE, ref=m.notification_id, message_id=m.message_id,
                             recipients=(m.recipient,), message=m.message())
                for m in writes.mails
            ], now=min(m.date for m in writes.mails))
        if writes.outbox:
            statement.cte("announced", outbox.insert_sql(1), *outbox.outbox_columns(writes.outbox))
            statement.select(outbox.NOTIFY_SQL)
        row = await statement.run(self.conn)
        return row["raised"] if writes.new_alerts else 0

    async def next_notification_seq(self, *, alert_id: str, kind: str, level: int) -> int:
        return await self.conn.fetchval(
            "SELECT coalesce(max(seq) + 1, 0) FROM notifications WHERE alert_id = $1 AND kind = $2 AND level = $3",
            alert_id, kind, level,
        )

    async def alert_notifications(self, alert_id: str) -> list[Notification]:
        rows = await self.conn.fetch(
            f"SELECT {_NOTIFICATION_SELECT} FROM notifications WHERE alert_id = $1 ORDER BY created_at, level, seq",
            alert_id,
        )
        return [_notification(r) for r in rows]

    async def notification_deliveries(self, notification_ids: list[str]) -> dict[str, list[Delivery]]:
        found = await queue.statuses_by_ref(self.conn, purpose=PURPOSE, refs=notification_ids)
        return {ref: [Delivery(recipients=m.recipients, state=m.state.value, attempts=m.attempts,
                               message_id=m.message_id, last_error=m.last_error,
                               next_attempt_at=m.next_attempt_at if m.state.value == "pending" else None,
                               sent_at=m.sent_at, refused=m.refused) for m in mails]
                for ref, mails in found.items()}

    async def notification_for_link(self, notification_id: str) -> Notification | None:
        row = await self.conn.fetchrow(
            f"SELECT {_NOTIFICATION_SELECT} FROM notifications WHERE notification_id = $1", notification_id
        )
        return _notification(row) if row else None
