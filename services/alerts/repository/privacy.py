"""The SQL of alerts' privacy duties: a customer's erasure, the retention of customers' details
(as ``runtime.retain`` rules) and the upgrade of rows written before customers were keyed by
pseudonyms. Every time comes from the caller."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from services.alerts.emails import PURPOSE
from shared.mail import queue

# What anonymising clears, table by table: the customer's contacts and words (their feedback's
# text, scorer cues quoting it, the alert's summary made of it, managers' notes about them, the
# notifications' subjects quoting them). The alert itself stays, with its times and severity: the KPIs.
_FALLBACK_SUMMARY = "channel || ' MOT ' || severity"  # what domain.summarise says for feedback without text
ALERT_CUSTOMER = {"customer": "NULL", "customer_key": "NULL", "subjects": "'{}'", "summary": _FALLBACK_SUMMARY}
FEEDBACK_WORDS = {"text": "NULL", "cues": "'[]'", "subjects": "'{}'"}
PEOPLES_NOTES = {"note": "CASE WHEN actor = 'system' OR actor LIKE 'system:%' THEN note END"}
NOTIFICATION_SUBJECT = {"subject": "'-'"}  # the mails themselves are the mail queue's (MAIL_CONTENT_DAYS)
# A verdict keeps a copy of its feedback's words: it goes when they go (its feedback joined the alert
# ALERTS_PERSONAL_DATA_DAYS ago), whenever it was given.
VERDICT_FEEDBACK_LINKED = "(SELECT f.linked_at FROM alert_feedback f WHERE f.feedback_id = alert_verdicts.feedback_id)"


def _set(columns: dict[str, str]) -> str:
    return ", ".join(f"{c} = {v}" for c, v in columns.items())


def _count(result: str) -> int:
    return int(result.split()[-1])


async def customer_subjects(conn: asyncpg.Connection, subjects: list[str]) -> set[str]:
    """Every pseudonym on the rows naming any of ``subjects``: the customer's other contacts."""
    rows = await conn.fetch(
        """SELECT DISTINCT s FROM (
               SELECT unnest(subjects) AS s FROM alerts WHERE subjects && $1::text[]
               UNION ALL SELECT unnest(subjects) FROM alert_feedback WHERE subjects && $1::text[]
               UNION ALL SELECT unnest(subjects) FROM customer_moments WHERE subjects && $1::text[]) AS found""",
        subjects,
    )
    return {r["s"] for r in rows}


async def erase_customer(conn: asyncpg.Connection, subjects: list[str], *, now: datetime) -> dict[str, int]:
    """Anonymise what alerts holds about the customer with these pseudonyms; rows changed per table.

    Their alerts keep their state (the KPIs) without the customer's contacts or words; their
    feedback on any alert loses its text and managers' verdicts on it go; on every alert touched
    (theirs, or one holding their feedback) managers' notes (history and verdicts) and the
    notifications' subjects are cleared and their mails forgotten (one not yet sent is given up);
    their contact history is deleted."""
    touched = [r["alert_id"] for r in await conn.fetch(
        """SELECT alert_id FROM alerts WHERE subjects && $1::text[]
           UNION SELECT alert_id FROM alert_feedback WHERE subjects && $1::text[]""",
        subjects,
    )]
    notifications = [r["notification_id"] for r in await conn.fetch(
        "SELECT notification_id FROM notifications WHERE alert_id = ANY($1::text[])", touched)]
    return {
        # managers' verdicts keep a copy of the feedback's words: theirs go, others' keep no notes
        "alert_verdicts": _count(await conn.execute(
            """DELETE FROM alert_verdicts WHERE feedback_id IN (
                   SELECT feedback_id FROM alert_feedback WHERE subjects && $1::text[])""", subjects))
        + _count(await conn.execute(
            "UPDATE alert_verdicts SET note = NULL WHERE alert_id = ANY($1::text[]) AND note IS NOT NULL", touched)),
        "alerts": _count(await conn.execute(
            f"UPDATE alerts SET {_set(ALERT_CUSTOMER)} WHERE subjects && $1::text[]", subjects)),
        "alert_feedback": _count(await conn.execute(
            f"UPDATE alert_feedback SET {_set(FEEDBACK_WORDS)} WHERE subjects && $1::text[]", subjects)),
        "alert_events": _count(await conn.execute(
            f"""UPDATE alert_events SET {_set(PEOPLES_NOTES)} WHERE alert_id = ANY($1::text[])
                AND note IS NOT NULL AND NOT (actor = 'system' OR actor LIKE 'system:%')""", touched)),
        "notifications": _count(await conn.execute(
            f"""UPDATE notifications SET {_set(NOTIFICATION_SUBJECT)}
                WHERE notification_id = ANY($1::text[]) AND subject <> '-'""", notifications)),
        "notification_backlog": _count(await conn.execute(  # bodies waiting to be queued (the upgrade's)
            "DELETE FROM notification_backlog WHERE notification_id = ANY($1::text[])", notifications)),
        "mail_queue": await queue.forget(conn, purpose=PURPOSE, refs=notifications, now=now),
        "customer_moments": _count(await conn.execute(
            "DELETE FROM customer_moments WHERE subjects && $1::text[] OR customer_key = ANY($1::text[])", subjects)),
    }


# --- the upgrade: rows from before customers were keyed by pseudonyms (migration 0100) ----------------------
async def alerts_to_pseudonymise(conn: asyncpg.Connection, *, limit: int) -> list[tuple[str, str | None]]:
    rows = await conn.fetch(
        "SELECT alert_id, customer FROM alerts WHERE subjects IS NULL LIMIT $1 FOR UPDATE SKIP LOCKED", limit)
    return [(r["alert_id"], r["customer"]) for r in rows]


async def set_alert_subjects(conn: asyncpg.Connection, rows: list[tuple[str, str | None, list[str]]]) -> None:
    """``(alert_id, customer_key, subjects)``."""
    await conn.execute(
        """UPDATE alerts a SET customer_key = u.customer_key, subjects = string_to_array(u.subjects, ' ')
           FROM unnest($1::text[], $2::text[], $3::text[]) AS u (alert_id, customer_key, subjects)
           WHERE a.alert_id = u.alert_id""",
        [r[0] for r in rows], [r[1] for r in rows], [" ".join(r[2]) for r in rows],
    )


async def moments_to_pseudonymise(conn: asyncpg.Connection, *, limit: int) -> list[tuple[str, str]]:
    """``(customer_key, feedback_id)`` of moments still keyed by a plaintext contact."""
    rows = await conn.fetch(
        """SELECT customer_key, feedback_id FROM customer_moments WHERE subjects IS NULL
           LIMIT $1 FOR UPDATE SKIP LOCKED""", limit)
    return [(r["customer_key"], r["feedback_id"]) for r in rows]


async def rekey_moments(conn: asyncpg.Connection, rows: list[tuple[str, str, str | None]]) -> None:
    """``(old key, feedback_id, new key)``: each moment keyed by its pseudonym (None: not a
    contact we can pseudonymise; the moment goes)."""
    old, ids, new = ([r[i] for r in rows] for i in range(3))
    await conn.execute(
        """DELETE FROM customer_moments m USING unnest($1::text[], $2::text[], $3::text[]) AS u (old, feedback_id, new)
           WHERE m.customer_key = u.old AND m.feedback_id = u.feedback_id
             AND (u.new IS NULL OR EXISTS (SELECT 1 FROM customer_moments k
                                           WHERE k.customer_key = u.new AND k.feedback_id = u.feedback_id))""",
        old, ids, new,
    )
    await conn.execute(
        """UPDATE customer_moments m SET customer_key = u.new, subjects = ARRAY[u.new]
           FROM unnest($1::text[], $2::text[], $3::text[]) AS u (old, feedback_id, new)
           WHERE m.customer_key = u.old AND m.feedback_id = u.feedback_id AND u.new IS NOT NULL""",
        old, ids, new,
    )


async def subject_feedback_links(conn: asyncpg.Connection, *, limit: int) -> int:
    """Give feedback links from before the upgrade their customer's pseudonyms: the alert's when
    the link raised it, else those of the feedback's moment, else none. Only links whose alert and
    moment were upgraded already (another replica may still be at it)."""
    return _count(await conn.execute(
        """WITH picked AS MATERIALIZED (
               SELECT l.feedback_id FROM alert_feedback l WHERE l.subjects IS NULL
                 AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.feedback_id = l.feedback_id AND a.subjects IS NULL)
                 AND NOT EXISTS (SELECT 1 FROM customer_moments m
                                 WHERE m.feedback_id = l.feedback_id AND m.subjects IS NULL)
               LIMIT $1 FOR UPDATE SKIP LOCKED)
           UPDATE alert_feedback f SET subjects = coalesce(
               (SELECT a.subjects FROM alerts a WHERE a.feedback_id = f.feedback_id),
               (SELECT m.subjects FROM customer_moments m WHERE m.feedback_id = f.feedback_id LIMIT 1),
               '{}')
           FROM picked WHERE f.feedback_id = picked.feedback_id""",
        limit,
    ))
