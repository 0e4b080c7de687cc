"""The only module of alerts with SQL. Every time comes from the caller (its
Clock), never from the database's ``now()``, so tests can move time."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime
from typing import Any

import asyncpg

from services.alerts.domain import Alert
from shared.db import advisory_key

NOTIFY_CHANNEL = "keymoment_alerts_notifications"

_ALERT_COLUMNS = [f.name for f in fields(Alert) if f.name != "extra"]
_ALERT_SELECT = ", ".join(_ALERT_COLUMNS)
_JSON_COLUMNS = {"customer"}


def _alert(row: asyncpg.Record) -> Alert:
    values = {c: row[c] for c in _ALERT_COLUMNS}
    for c in _JSON_COLUMNS:
        if values[c] is not None:
            values[c] = json.loads(values[c])
    values["recipients"] = list(values["recipients"])
    return Alert(**values)


# ---------------------------------------------------------------------------- customers
async def customer_history(
    conn: asyncpg.Connection, *, customer_key: str, since: datetime, exclude: list[str]
) -> dict[str, asyncpg.Record | None]:
    """The customer's last and worst moment since ``since`` (not counting ``exclude``)."""
    rows = await conn.fetch(
        """(SELECT 'last' AS which, * FROM customer_moments
             WHERE customer_key = $1 AND at >= $2 AND NOT feedback_id = ANY($3::text[])
             ORDER BY at DESC LIMIT 1)
           UNION ALL
           (SELECT 'worst' AS which, * FROM customer_moments
             WHERE customer_key = $1 AND at >= $2 AND NOT feedback_id = ANY($3::text[])
             ORDER BY mot, at DESC LIMIT 1)
           UNION ALL
           (SELECT 'count' AS which, $1, '', count(*)::int, '', NULL, NULL, NULL FROM customer_moments
             WHERE customer_key = $1 AND at >= $2 AND NOT feedback_id = ANY($3::text[]))""",
        customer_key, since, exclude,
    )
    out: dict[str, Any] = {"last": None, "worst": None, "count": 0}
    for row in rows:
        out[row["which"]] = row["mot"] if row["which"] == "count" else row
    return out


async def prune_moments(conn: asyncpg.Connection, *, before: datetime) -> int:
    result = await conn.execute("DELETE FROM customer_moments WHERE at < $1", before)
    return int(result.split()[-1])


# ---------------------------------------------------------------------------- alerts
async def lock_group_keys(conn: asyncpg.Connection, keys: list[str]) -> None:
    """Serialise concurrent feedback that could group into one alert (transaction-scoped)."""
    if keys:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) AS keys",
            sorted({advisory_key(f"alerts-group:{key}") for key in keys}),
        )


async def open_alerts_for(
    conn: asyncpg.Connection, *, customer_keys: list[str], places: list[tuple[str, str | None]], since: datetime
) -> list[Alert]:
    """Every open alert a batch of negative feedback could join, locked (in a fixed order):
    those of these customers, and those at these places with feedback since ``since``."""
    if not customer_keys and not places:
        return []
    rows = await conn.fetch(
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


async def get_alert(conn: asyncpg.Connection, alert_id: str, *, for_update: bool = False) -> Alert | None:
    sql = f"SELECT {_ALERT_SELECT} FROM alerts WHERE alert_id = $1"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if for_update else ""), alert_id)
    return _alert(row) if row else None


async def insert_alerts(conn: asyncpg.Connection, alerts: list[Alert]) -> int:
    """Insert several in one statement; returns how many were new (the others existed already)."""
    if not alerts:
        return 0
    rows = [{c: getattr(a, c) for c in _ALERT_COLUMNS} for a in alerts]
    inserted = await conn.fetch(
        f"""INSERT INTO alerts ({_ALERT_SELECT})
            SELECT {_ALERT_SELECT} FROM jsonb_populate_recordset(NULL::alerts, $1::jsonb)
            ON CONFLICT (feedback_id) DO NOTHING RETURNING alert_id""",
        json.dumps(rows, default=_json_default, ensure_ascii=False),
    )
    return len(inserted)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_MUTABLE = [
    "severity", "status", "sla_due_at", "escalation_level", "sla_breached", "acknowledged_at", "acknowledged_by",
    "resolved_at", "resolved_by", "reopen_count", "feedback_count", "last_feedback_at", "last_notified_at",
    "updated_at",
]
_SAVE_ALERT = f"UPDATE alerts SET {', '.join(f'{c} = ${i}' for i, c in enumerate(_MUTABLE, start=2))} WHERE alert_id = $1"


async def save_alert(conn: asyncpg.Connection, alert: Alert) -> None:
    """Write the alert's mutable state (the caller holds its row lock)."""
    await save_alerts(conn, [alert])


async def save_alerts(conn: asyncpg.Connection, alerts: list[Alert]) -> None:
    if alerts:
        await conn.executemany(_SAVE_ALERT, [(a.alert_id, *[getattr(a, c) for c in _MUTABLE]) for a in alerts])


async def due_alerts(conn: asyncpg.Connection, *, now: datetime, limit: int) -> list[Alert]:
    """Alerts whose SLA timer expired, locked; replicas skip each other's rows."""
    rows = await conn.fetch(
        f"""SELECT {_ALERT_SELECT} FROM alerts
            WHERE sla_due_at <= $1 ORDER BY sla_due_at LIMIT $2 FOR UPDATE SKIP LOCKED""",
        now, limit,
    )
    return [_alert(r) for r in rows]


async def list_alerts(
    conn: asyncpg.Connection, *, status: list[str] | None, severity: list[int] | None, location: str | None,
    team: str | None, since: datetime | None, recipient: str | None, limit: int, before: datetime | None,
) -> list[Alert]:
    rows = await conn.fetch(
        f"""SELECT {_ALERT_SELECT} FROM alerts
            WHERE ($1::text[] IS NULL OR status = ANY($1))
              AND ($2::int[] IS NULL OR severity = ANY($2))
              AND ($3::text IS NULL OR location = $3)
              AND ($4::text IS NULL OR team = $4)
              AND ($5::timestamptz IS NULL OR raised_at >= $5)
              AND ($6::text IS NULL OR $6 = ANY(recipients))
              AND ($8::timestamptz IS NULL OR raised_at < $8)
            ORDER BY raised_at DESC LIMIT $7""",
        status, severity, location, team, since, recipient, limit, before,
    )
    return [_alert(r) for r in rows]


async def open_counts(conn: asyncpg.Connection) -> dict[int, int]:
    rows = await conn.fetch("SELECT severity, count(*) AS n FROM alerts WHERE status <> 'resolved' GROUP BY severity")
    return {r["severity"]: r["n"] for r in rows}


# ---------------------------------------------------------------------------- feedback & history
_LINK_FEEDBACK = """INSERT INTO alert_feedback (feedback_id, alert_id, role, mot, confidence, cues, escalation, channel,
        location, touchpoint, text, rating, language, occurred_at, received_at, linked_at)
    VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7::jsonb, $8, $9, $10, $11, $12::jsonb, $13, $14, $15, $16)
    ON CONFLICT (feedback_id) DO NOTHING"""


def _link_row(
    *, feedback_id: str, alert_id: str, role: str, mot: int, confidence: float,
    cues: list[str], escalation: list[str], channel: str, location: str | None, touchpoint: str | None,
    text: str | None, rating: dict | None, language: str | None, occurred_at: datetime | None,
    received_at: datetime, linked_at: datetime,
) -> tuple[Any, ...]:
    return (
        feedback_id, alert_id, role, mot, confidence, json.dumps(cues, ensure_ascii=False),
        json.dumps(escalation), channel, location, touchpoint, text,
        json.dumps(rating) if rating is not None else None, language, occurred_at, received_at, linked_at,
    )


async def link_feedback(conn: asyncpg.Connection, **link: Any) -> None:
    """Link one feedback to an alert (keywords: the columns of ``alert_feedback``)."""
    await conn.execute(_LINK_FEEDBACK, *_link_row(**link))


async def link_feedback_many(conn: asyncpg.Connection, links: list[dict[str, Any]]) -> None:
    if links:
        await conn.executemany(_LINK_FEEDBACK, [_link_row(**link) for link in links])


async def linked_feedback(conn: asyncpg.Connection, feedback_ids: list[str]) -> set[str]:
    """Which of these feedback are already on an alert."""
    if not feedback_ids:
        return set()
    rows = await conn.fetch("SELECT feedback_id FROM alert_feedback WHERE feedback_id = ANY($1::text[])", feedback_ids)
    return {r["feedback_id"] for r in rows}


async def alert_feedback(conn: asyncpg.Connection, alert_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT feedback_id, role, mot, confidence, cues, escalation, channel, location, touchpoint, text, rating,
                  language, occurred_at, received_at, linked_at
           FROM alert_feedback WHERE alert_id = $1 ORDER BY linked_at, feedback_id""",
        alert_id,
    )
    out = []
    for r in rows:
        item = dict(r)
        for key in ("cues", "escalation", "rating"):
            item[key] = json.loads(item[key]) if item[key] is not None else None
        out.append(item)
    return out


_ADD_EVENT = """INSERT INTO alert_events (alert_id, at, action, actor, from_status, to_status, note)
    VALUES ($1, $2, $3, $4, $5, $6, $7)"""


def _event_row(*, alert_id: str, at: datetime, action: str, actor: str, from_status: str | None,
               to_status: str | None, note: str | None) -> tuple[Any, ...]:
    return alert_id, at, action, actor, from_status, to_status, note


async def add_event(conn: asyncpg.Connection, **event: Any) -> None:
    """One step of an alert's history (keywords: the columns of ``alert_events``)."""
    await conn.execute(_ADD_EVENT, *_event_row(**event))


async def add_events(conn: asyncpg.Connection, events: list[dict[str, Any]]) -> None:
    if events:
        await conn.executemany(_ADD_EVENT, [_event_row(**e) for e in events])


async def alert_events(conn: asyncpg.Connection, alert_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT at, action, actor, from_status, to_status, note FROM alert_events WHERE alert_id = $1 ORDER BY id",
        alert_id,
    )
    return [dict(r) for r in rows]


# ---------------------------------------------------------------------------- notifications
_ADD_NOTIFICATION = """WITH added AS (
        INSERT INTO notifications (notification_id, alert_id, kind, level, seq, recipients, subject, body_text,
            body_html, message_id, status, silence_id, next_attempt_at, created_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)
        ON CONFLICT DO NOTHING RETURNING notification_id)
    -- delivered at commit: wakes the sender
    SELECT notification_id, CASE WHEN $11 = 'pending' THEN pg_notify($14, '') END FROM added"""


def _notification_row(
    *, notification_id: str, alert_id: str, kind: str, level: int, seq: int,
    recipients: list[str], subject: str, body_text: str, body_html: str, message_id: str, status: str,
    silence_id: str | None, now: datetime,
) -> tuple[Any, ...]:
    return (notification_id, alert_id, kind, level, seq, recipients, subject, body_text, body_html, message_id,
            status, silence_id, now, NOTIFY_CHANNEL)


async def add_notification(conn: asyncpg.Connection, **notification: Any) -> bool:
    """Store one rendered notification; False when it existed already."""
    return await conn.fetchval(_ADD_NOTIFICATION, *_notification_row(**notification)) is not None


async def add_notifications(conn: asyncpg.Connection, notifications: list[dict[str, Any]]) -> None:
    if notifications:
        await conn.executemany(_ADD_NOTIFICATION, [_notification_row(**n) for n in notifications])


async def alert_notifications(conn: asyncpg.Connection, alert_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT notification_id, kind, level, seq, recipients, subject, message_id, status, silence_id, attempts,
                  last_error, created_at, sent_at
           FROM notifications WHERE alert_id = $1 ORDER BY created_at, level, seq""",
        alert_id,
    )
    return [dict(r) | {"recipients": list(r["recipients"])} for r in rows]


async def claim_notifications(
    conn: asyncpg.Connection, *, now: datetime, limit: int, worker: str
) -> list[asyncpg.Record]:
    """Move due pending notifications to 'sending' (committed before any SMTP traffic)."""
    return await conn.fetch(
        """UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, claimed_at = $1, claimed_by = $3
           WHERE notification_id IN (
               SELECT notification_id FROM notifications
               WHERE status = 'pending' AND next_attempt_at <= $1
               ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING n.notification_id, n.alert_id, n.kind, n.level, n.recipients, n.subject, n.body_text,
                     n.body_html, n.message_id, n.attempts, n.created_at""",
        now, limit, worker,
    )


async def mark_sent(conn: asyncpg.Connection, notification_id: str, *, at: datetime) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'sent', sent_at = $2, last_error = NULL WHERE notification_id = $1",
        notification_id, at,
    )


async def mark_retry(
    conn: asyncpg.Connection, notification_id: str, *, error: str, next_attempt_at: datetime | None
) -> None:
    """Back to pending at ``next_attempt_at``, or failed for good when None."""
    await conn.execute(
        """UPDATE notifications SET status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                  last_error = $2, next_attempt_at = coalesce($3, next_attempt_at)
           WHERE notification_id = $1""",
        notification_id, error[:1000], next_attempt_at,
    )


async def settle_stale_sending(
    conn: asyncpg.Connection, *, claimed_before: datetime, resend: bool, now: datetime
) -> list[str]:
    """Notifications left 'sending' by a process that died mid-send: the SMTP outcome is unknown."""
    rows = await conn.fetch(
        """UPDATE notifications SET status = CASE WHEN $2 THEN 'pending' ELSE 'uncertain' END,
                  next_attempt_at = $3,
                  last_error = 'process stopped during the SMTP exchange; delivery unknown'
           WHERE status = 'sending' AND claimed_at < $1 RETURNING notification_id""",
        claimed_before, resend, now,
    )
    return [r["notification_id"] for r in rows]


async def release_claims(conn: asyncpg.Connection, *, worker: str, ids: list[str]) -> None:
    """Give back claimed notifications this process never started sending (graceful stop)."""
    await conn.execute(
        """UPDATE notifications SET status = 'pending', attempts = attempts - 1
           WHERE status = 'sending' AND claimed_by = $1 AND notification_id = ANY($2::text[])""",
        worker, ids,
    )


# ---------------------------------------------------------------------------- silences
async def insert_silence(
    conn: asyncpg.Connection, *, silence_id: str, matchers: dict, starts_at: datetime, ends_at: datetime,
    created_by: str, comment: str, created_at: datetime,
) -> None:
    await conn.execute(
        """INSERT INTO silences (silence_id, matchers, starts_at, ends_at, created_by, comment, created_at)
           VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7)""",
        silence_id, json.dumps(matchers, ensure_ascii=False), starts_at, ends_at, created_by, comment, created_at,
    )


def _silence(row: asyncpg.Record) -> dict[str, Any]:
    return dict(row) | {"matchers": json.loads(row["matchers"])}


_SILENCE_COLUMNS = "silence_id, matchers, starts_at, ends_at, created_by, comment, created_at, expired_by"


async def active_silences(conn: asyncpg.Connection, *, now: datetime) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE starts_at <= $1 AND ends_at > $1 ORDER BY created_at", now
    )
    return [_silence(r) for r in rows]


async def list_silences(conn: asyncpg.Connection, *, now: datetime, include_expired: bool) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {_SILENCE_COLUMNS} FROM silences WHERE $2 OR ends_at > $1
            ORDER BY created_at DESC LIMIT 500""",
        now, include_expired,
    )
    return [_silence(r) for r in rows]


async def expire_silence(conn: asyncpg.Connection, silence_id: str, *, now: datetime, by: str) -> dict | None:
    row = await conn.fetchrow(
        f"""UPDATE silences SET ends_at = greatest(starts_at + interval '1 microsecond', least(ends_at, $2)),
                   expired_by = coalesce(expired_by, $3)
            WHERE silence_id = $1 RETURNING {_SILENCE_COLUMNS}""",
        silence_id, now, by,
    )
    return _silence(row) if row else None


# ---------------------------------------------------------------------------- manager tokens
async def insert_token(
    conn: asyncpg.Connection, *, token_id: str, email: str, issued_by: str, issued_at: datetime, expires_at: datetime
) -> None:
    await conn.execute(
        "INSERT INTO manager_tokens (token_id, email, issued_by, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        token_id, email, issued_by, issued_at, expires_at,
    )


async def token_usable(conn: asyncpg.Connection, token_id: str, email: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT true FROM manager_tokens WHERE token_id = $1 AND email = $2 AND revoked_at IS NULL",
            token_id, email,
        )
    )


async def revoke_token(conn: asyncpg.Connection, token_id: str, *, now: datetime) -> bool:
    result = await conn.execute(
        "UPDATE manager_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE token_id = $1", token_id, now
    )
    return result.endswith(" 1")


async def next_notification_seq(conn: asyncpg.Connection, *, alert_id: str, kind: str, level: int) -> int:
    return await conn.fetchval(
        "SELECT coalesce(max(seq) + 1, 0) FROM notifications WHERE alert_id = $1 AND kind = $2 AND level = $3",
        alert_id, kind, level,
    )


async def notification_for_link(conn: asyncpg.Connection, notification_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT notification_id, alert_id, recipients FROM notifications WHERE notification_id = $1", notification_id
    )
    return dict(row) | {"recipients": list(row["recipients"])} if row else None


async def mark_uncertain(conn: asyncpg.Connection, notification_id: str, *, error: str) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'uncertain', last_error = $2 WHERE notification_id = $1",
        notification_id, error[:1000],
    )


async def add_moments(conn: asyncpg.Connection, moments: list[tuple[Any, ...]]) -> None:
    """Known customers' moments into their contact history, a whole batch in one statement.
    Each is ``(customer_key, feedback_id, mot, channel, location, touchpoint, at)``."""
    if not moments:
        return
    columns = list(zip(*moments, strict=True))
    await conn.execute(
        """INSERT INTO customer_moments (customer_key, feedback_id, mot, channel, location, touchpoint, at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[],
                                $7::timestamptz[])
           ON CONFLICT DO NOTHING""",
        *columns,
    )
