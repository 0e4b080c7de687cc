"""The only module of reporting with SQL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from services.reporting.domain import Increment
from shared.contracts import AlertRaised, AlertUpdated, FeedbackReceived, FeedbackScored, SurveyInvitationStep
from shared.db import advisory_key


# Advisory lock spaces (the two-key form: apart from every single-key lock) of reporting's rows.
FEEDBACK_LOCKS = 1
ALERT_LOCKS = 2


async def lock_keys(conn: asyncpg.Connection, space: int, keys: Sequence[str]) -> None:
    """Lock ``keys`` to the end of the transaction, in hash order (one order for every transaction);
    a transaction then touches their rows without waiting on anyone else's row locks."""
    if keys:
        # PostgreSQL evaluates the volatile lock calls after sorting (SELECT reference, "Output list")
        await conn.execute(
            """SELECT pg_advisory_xact_lock($1::int, k)
               FROM (SELECT DISTINCT hashtext(key) AS k FROM unnest($2::text[]) AS key) AS keys ORDER BY k""",
            space, list(keys),
        )


async def add_received(conn: asyncpg.Connection, feedback: Sequence[FeedbackReceived]) -> set[str]:
    """Store what intake received, a batch in one statement; returns the ids seen as received for
    the first time (a re-sent copy under a new event id is not among them). Ids must be distinct."""
    if not feedback:
        return set()
    rows = await conn.fetch(
        """INSERT INTO feedback_facts AS f
               (feedback_id, channel, location, touchpoint, rating_scale, rating_value, occurred_at, received_at,
                received)
           SELECT *, true FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                                      $7::timestamptz[], $8::timestamptz[])
           ON CONFLICT (feedback_id) DO UPDATE
               SET channel = EXCLUDED.channel, location = EXCLUDED.location, touchpoint = EXCLUDED.touchpoint,
                   rating_scale = EXCLUDED.rating_scale, rating_value = EXCLUDED.rating_value,
                   occurred_at = EXCLUDED.occurred_at, received_at = EXCLUDED.received_at, received = true
               WHERE NOT f.received
           RETURNING feedback_id""",
        [fb.id for fb in feedback],
        [fb.channel.value for fb in feedback],
        [fb.location for fb in feedback],
        [fb.touchpoint for fb in feedback],
        [fb.rating.scale.value if fb.rating else None for fb in feedback],
        [fb.rating.value if fb.rating else None for fb in feedback],
        [fb.occurred_at for fb in feedback],
        [fb.received_at for fb in feedback],
    )
    return {r["feedback_id"] for r in rows}


async def add_scored(conn: asyncpg.Connection, scored: Sequence[tuple[FeedbackScored, datetime]]) -> set[str]:
    """Store feedback's MOT scores (each with its event time), a batch in one statement; returns
    the ids scored for the first time. Ids must be distinct."""
    if not scored:
        return set()
    rows = await conn.fetch(
        """INSERT INTO feedback_facts AS f
               (feedback_id, channel, location, touchpoint, rating_scale, rating_value, occurred_at, received_at,
                mot, negative, scored_at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[],
                                $7::timestamptz[], $8::timestamptz[], $9::int[], $10::bool[], $11::timestamptz[])
           ON CONFLICT (feedback_id) DO UPDATE
               SET mot = EXCLUDED.mot, negative = EXCLUDED.negative, scored_at = EXCLUDED.scored_at
               WHERE f.mot IS NULL
           RETURNING feedback_id""",
        [s.feedback_id for s, _ in scored],
        [s.channel.value for s, _ in scored],
        [s.location for s, _ in scored],
        [s.touchpoint for s, _ in scored],
        [s.rating.scale.value if s.rating else None for s, _ in scored],
        [s.rating.value if s.rating else None for s, _ in scored],
        [s.occurred_at for s, _ in scored],
        [s.received_at for s, _ in scored],
        [s.mot for s, _ in scored],
        [s.negative for s, _ in scored],
        [at for _, at in scored],
    )
    return {r["feedback_id"] for r in rows}


async def add_to_counters(conn: asyncpg.Connection, increments: Sequence[Increment]) -> None:
    """Add to pre-aggregated series (callers pass them merged and sorted)."""
    if not increments:
        return
    await conn.execute(
        """INSERT INTO kpi_counters AS k (metric, channel, location, touchpoint, severity, key, survey, team, value)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                $8::text[], $9::text[], $7::float8[])
           ON CONFLICT (metric, channel, location, touchpoint, severity, key, survey, team)
               DO UPDATE SET value = k.value + EXCLUDED.value""",
        [i.metric for i in increments],
        [i.channel for i in increments],
        [i.location for i in increments],
        [i.touchpoint for i in increments],
        [i.severity for i in increments],
        [i.key for i in increments],
        [i.delta for i in increments],
        [i.survey for i in increments],
        [i.team for i in increments],
    )


# ------------------------------------------------------------------------------------------ label slots
async def label_slots(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT dimension, value, label FROM label_slots")


async def label_of(conn: asyncpg.Connection, *, dimension: str, value: str) -> str | None:
    """The label a raw value was given, if any (a read: no lock)."""
    return await conn.fetchval("SELECT label FROM label_slots WHERE dimension = $1 AND value = $2", dimension, value)


async def claim_label(conn: asyncpg.Connection, *, dimension: str, value: str, limit: int, other: str) -> str:
    """The label of a raw value: its own when it has a slot or one is free, else ``other``.
    Serialised per dimension (an advisory lock held to the end of the transaction)."""
    label = await conn.fetchval("SELECT label FROM label_slots WHERE dimension = $1 AND value = $2", dimension, value)
    if label is not None:
        return label
    await conn.execute("SELECT pg_advisory_xact_lock($1)", advisory_key(f"reporting.label_slots.{dimension}"))
    label = await conn.fetchval("SELECT label FROM label_slots WHERE dimension = $1 AND value = $2", dimension, value)
    if label is not None:
        return label
    used = await conn.fetchval("SELECT count(*) FROM label_slots WHERE dimension = $1", dimension)
    if used >= limit:
        return other
    await conn.execute(
        "INSERT INTO label_slots (dimension, value, label) VALUES ($1, $2, $2) ON CONFLICT DO NOTHING",
        dimension, value,
    )
    return value


# ------------------------------------------------------------------------------------------ alerts
async def upsert_alert_raised(conn: asyncpg.Connection, a: AlertRaised) -> asyncpg.Record:
    """Create the alert (or leave a newer state alone); returns the stored row."""
    return await conn.fetchrow(
        """INSERT INTO alerts AS a (alert_id, severity, channel, location, touchpoint, status, raised_at, state_at,
                                    team, raised_mot)
           VALUES ($1, $2, $3, $4, $5, 'open', $6, $6, $7, $2)
           ON CONFLICT (alert_id) DO UPDATE SET team = coalesce(a.team, EXCLUDED.team),
                                                raised_mot = coalesce(a.raised_mot, EXCLUDED.raised_mot)
           RETURNING *, (xmax = 0) AS inserted""",
        a.alert_id, a.severity, a.channel.value, a.location, a.touchpoint, a.raised_at, a.team,
    )


async def upsert_alert_updated(conn: asyncpg.Connection, u: AlertUpdated) -> asyncpg.Record:
    """Apply a state snapshot unless a newer one is already stored. The
    acknowledged/resolved/breached facts only ever fill in (an older snapshot
    still tells that the alert was acknowledged). Returns the stored row, locked."""
    return await conn.fetchrow(
        """INSERT INTO alerts AS a (alert_id, severity, channel, location, touchpoint, status, raised_at,
                                    acknowledged_at, resolved_at, sla_breached, sla_breached_at, state_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, CASE WHEN $10 THEN $11::timestamptz END, $11)
           ON CONFLICT (alert_id) DO UPDATE SET
               status = CASE WHEN EXCLUDED.state_at >= a.state_at THEN EXCLUDED.status ELSE a.status END,
               severity = CASE WHEN EXCLUDED.state_at >= a.state_at THEN EXCLUDED.severity ELSE a.severity END,
               state_at = greatest(a.state_at, EXCLUDED.state_at),
               acknowledged_at = coalesce(a.acknowledged_at, EXCLUDED.acknowledged_at),
               resolved_at = CASE WHEN EXCLUDED.state_at >= a.state_at THEN coalesce(EXCLUDED.resolved_at, a.resolved_at)
                                  ELSE coalesce(a.resolved_at, EXCLUDED.resolved_at) END,
               sla_breached = a.sla_breached OR EXCLUDED.sla_breached,
               sla_breached_at = coalesce(a.sla_breached_at, EXCLUDED.sla_breached_at)
           RETURNING *, (xmax = 0) AS inserted""",
        u.alert_id, u.severity, u.channel.value, u.location, u.touchpoint, u.status.value, u.raised_at,
        u.acknowledged_at, u.resolved_at, u.sla_breached, u.at,
    )


async def mark_counted(conn: asyncpg.Connection, alert_id: str, *, ack: bool, resolve: bool, breach: bool) -> None:
    await conn.execute(
        """UPDATE alerts SET ack_counted = ack_counted OR $2, resolve_counted = resolve_counted OR $3,
                             breach_counted = breach_counted OR $4
           WHERE alert_id = $1""",
        alert_id, ack, resolve, breach,
    )


# ------------------------------------------------------------------------------------------ exposition
async def counters(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT metric, channel, location, touchpoint, severity, key, survey, team, value FROM kpi_counters"
    )


async def open_alerts(conn: asyncpg.Connection | asyncpg.Pool) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT severity, count(*) AS n FROM alerts WHERE status <> 'resolved' GROUP BY severity"
    )


# ------------------------------------------------------------------------------------------ surveys
async def add_funnel_steps(conn: asyncpg.Connection, steps: Sequence[SurveyInvitationStep]) -> set[tuple[str, str]]:
    """Store invitation steps (one statement); returns the ``(invitation id, step)`` pairs seen for the
    first time."""
    if not steps:
        return set()
    rows = await conn.fetch(
        """INSERT INTO survey_funnel (invitation_id, step, survey_id, reason, at)
           SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
           ON CONFLICT (invitation_id, step) DO NOTHING
           RETURNING invitation_id, step""",
        [s.invitation_id for s in steps], [s.step.value for s in steps], [s.survey_id for s in steps],
        [s.reason.value if s.reason else None for s in steps], [s.at for s in steps],
    )
    return {(r["invitation_id"], r["step"]) for r in rows}


async def add_recovery_answers(conn: asyncpg.Connection, answers: dict[str, str]) -> None:
    """Recovery-survey answers (feedback id -> the alert it answers), to count once their MOT and their
    alert's raising MOT are known."""
    if answers:
        await conn.execute(
            """INSERT INTO recovery_answers (feedback_id, alert_id)
               SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING""",
            list(answers), list(answers.values()),
        )


async def settle_recovery_answers(conn: asyncpg.Connection, *, feedback_ids: Sequence[str] = (),
                                  alert_ids: Sequence[str] = ()) -> list[asyncpg.Record]:
    """The recovery answers among these feedback or alerts that can now be counted (their MOT and
    their alert's raising MOT are known), marked counted: ``mot, raised_mot, team, location``."""
    return await conn.fetch(
        """WITH ready AS (
               SELECT r.feedback_id, f.mot, a.raised_mot, a.team, a.location
               FROM recovery_answers r
               JOIN feedback_facts f USING (feedback_id)
               JOIN alerts a ON a.alert_id = r.alert_id
               WHERE NOT r.counted AND f.mot IS NOT NULL AND a.raised_mot IS NOT NULL
                 AND (r.feedback_id = ANY ($1::text[]) OR r.alert_id = ANY ($2::text[]))
               ORDER BY r.feedback_id
               FOR UPDATE OF r)
           UPDATE recovery_answers r SET counted = true FROM ready WHERE r.feedback_id = ready.feedback_id
           RETURNING ready.mot, ready.raised_mot, ready.team, ready.location""",
        list(feedback_ids), list(alert_ids),
    )


# ------------------------------------------------------------------------------------------ KPI API
_GROUP_COLUMNS = {"channel": "channel", "location": "location", "touchpoint": "touchpoint"}


async def feedback_kpis(conn: asyncpg.Connection | asyncpg.Pool, *, start: datetime, end: datetime,
                        group_by: str | None) -> list[asyncpg.Record]:
    """Volumes and KPI ingredients of feedback whose moment falls in [start, end)."""
    group = _GROUP_COLUMNS[group_by] if group_by else "NULL::text"
    # The group column comes from a fixed allow-list above, never from the request text.
    return await conn.fetch(
        f"""SELECT {group} AS grp,
                   count(*) FILTER (WHERE received) AS feedback,
                   count(*) FILTER (WHERE rating_scale = 'nps') AS nps_responses,
                   count(*) FILTER (WHERE rating_scale = 'nps' AND rating_value >= 9) AS promoters,
                   count(*) FILTER (WHERE rating_scale = 'nps' AND rating_value BETWEEN 7 AND 8) AS passives,
                   count(*) FILTER (WHERE rating_scale = 'nps' AND rating_value <= 6) AS detractors,
                   count(*) FILTER (WHERE rating_scale = 'csat') AS csat_responses,
                   count(*) FILTER (WHERE rating_scale = 'csat' AND rating_value >= 4) AS csat_satisfied,
                   count(mot) AS scored,
                   count(*) FILTER (WHERE negative) AS negative,
                   avg(mot)::float8 AS mot_mean
            FROM feedback_facts
            WHERE at >= $1 AND at < $2
            GROUP BY 1 ORDER BY 1 NULLS FIRST""",  # noqa: S608 - allow-listed column name
        start, end,
    )


async def alert_kpis(conn: asyncpg.Connection | asyncpg.Pool, *, start: datetime, end: datetime,
                     group_by: str | None) -> list[asyncpg.Record]:
    """Alerts raised in [start, end): counts and time-to-acknowledge / resolve percentiles."""
    group = _GROUP_COLUMNS[group_by] if group_by else "NULL::text"
    return await conn.fetch(
        f"""SELECT {group} AS grp,
                   count(*) AS alerts_raised,
                   count(*) FILTER (WHERE status <> 'resolved') AS alerts_open,
                   count(*) FILTER (WHERE sla_breached) AS sla_breaches,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - raised_at))
                       FILTER (WHERE acknowledged_at IS NOT NULL) AS ack_p50,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM acknowledged_at - raised_at))
                       FILTER (WHERE acknowledged_at IS NOT NULL) AS ack_p90,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - raised_at))
                       FILTER (WHERE resolved_at IS NOT NULL) AS resolve_p50,
                   percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM resolved_at - raised_at))
                       FILTER (WHERE resolved_at IS NOT NULL) AS resolve_p90
            FROM alerts
            WHERE raised_at >= $1 AND raised_at < $2
            GROUP BY 1 ORDER BY 1 NULLS FIRST""",  # noqa: S608 - allow-listed column name
        start, end,
    )
