"""The only module of survey with SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.survey.schemas import StoredSurvey, SurveyDefinition, SurveySummary
from shared.contracts import Customer

INVITATION_CHANNEL = "keymoment_survey_invitations"


# --- surveys ---------------------------------------------------------------------------
async def create_survey(conn: asyncpg.Connection, survey: SurveyDefinition) -> datetime | None:
    """Store a new survey; None when the id is taken (surveys are immutable)."""
    return await conn.fetchval(
        """INSERT INTO surveys (survey_id, definition) VALUES ($1, $2::jsonb)
           ON CONFLICT (survey_id) DO NOTHING RETURNING created_at""",
        survey.id,
        survey.model_dump_json(exclude_none=True),
    )


async def get_survey(conn: asyncpg.Connection | asyncpg.Pool, survey_id: str) -> StoredSurvey | None:
    row = await conn.fetchrow(
        """SELECT s.definition, s.builtin, s.created_at,
                  (SELECT count(*) FROM survey_responses r WHERE r.survey_id = s.survey_id) AS responses
           FROM surveys s WHERE s.survey_id = $1""",
        survey_id,
    )
    if row is None:
        return None
    return StoredSurvey(
        definition=SurveyDefinition.model_validate_json(row["definition"]),
        builtin=row["builtin"],
        created_at=row["created_at"],
        responses=row["responses"],
    )


async def survey_exists(conn: asyncpg.Connection, survey_id: str) -> bool:
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM surveys WHERE survey_id = $1)", survey_id)


async def list_surveys(conn: asyncpg.Connection | asyncpg.Pool, *, limit: int, offset: int) -> list[SurveySummary]:
    rows = await conn.fetch(
        """SELECT s.definition, s.builtin, s.created_at, coalesce(r.n, 0) AS responses
           FROM surveys s
           LEFT JOIN (SELECT survey_id, count(*) AS n FROM survey_responses GROUP BY survey_id) r USING (survey_id)
           ORDER BY s.created_at, s.survey_id LIMIT $1 OFFSET $2""",
        limit,
        offset,
    )
    out = []
    for row in rows:
        d = SurveyDefinition.model_validate_json(row["definition"])
        out.append(
            SurveySummary(
                id=d.id, title=d.title, access=d.access, questions=len(d.questions),
                builtin=row["builtin"], created_at=row["created_at"], responses=row["responses"],
            )
        )
    return out


# --- requests (personal links and invitations) ------------------------------------------
@dataclass(frozen=True)
class SurveyRequest:
    request_id: str
    survey_id: str
    kind: str
    alert_id: str | None
    customer: Customer
    language: str | None
    location: str | None
    touchpoint: str | None
    delivery_status: str
    attempts: int


_REQUEST_COLUMNS = (
    "request_id, survey_id, kind, alert_id, customer, language, location, touchpoint, delivery_status, attempts"
)


def _request(row: asyncpg.Record) -> SurveyRequest:
    return SurveyRequest(
        request_id=row["request_id"],
        survey_id=row["survey_id"],
        kind=row["kind"],
        alert_id=row["alert_id"],
        customer=Customer.model_validate_json(row["customer"]),
        language=row["language"],
        location=row["location"],
        touchpoint=row["touchpoint"],
        delivery_status=row["delivery_status"],
        attempts=row["attempts"],
    )


async def add_request(
    conn: asyncpg.Connection,
    *,
    request_id: str,
    survey_id: str,
    kind: str,
    alert_id: str | None,
    customer: Customer,
    language: str | None,
    location: str | None,
    touchpoint: str | None,
    requested_at: datetime,
    delivery_status: str,
) -> bool:
    """Record a request; False when it was already recorded (a redelivered or repeated request)."""
    inserted = await conn.fetchval(
        """INSERT INTO survey_requests (request_id, survey_id, kind, alert_id, customer, language, location,
                                        touchpoint, requested_at, delivery_status)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10)
           ON CONFLICT (request_id) DO NOTHING RETURNING true""",
        request_id, survey_id, kind, alert_id, customer.model_dump_json(exclude_none=True),
        language, location, touchpoint, requested_at, delivery_status,
    )
    if inserted and delivery_status == "pending":
        await conn.execute("SELECT pg_notify($1, '')", INVITATION_CHANNEL)  # delivered on commit
    return bool(inserted)


async def get_request(conn: asyncpg.Connection, request_id: str, *, lock: bool = False) -> SurveyRequest | None:
    sql = f"SELECT {_REQUEST_COLUMNS} FROM survey_requests WHERE request_id = $1"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), request_id)
    return _request(row) if row else None


async def claim_due_invitations(conn: asyncpg.Connection, *, limit: int, lease_seconds: float) -> list[SurveyRequest]:
    """Move due invitations to ``sending`` and return them. Several senders never
    claim the same row (SKIP LOCKED). A row left in ``sending`` longer than the
    lease belongs to a sender that crashed mid-send and is claimed again."""
    rows = await conn.fetch(
        f"""UPDATE survey_requests SET delivery_status = 'sending', claimed_at = now(), attempts = attempts + 1
            WHERE request_id IN (
                SELECT request_id FROM survey_requests
                WHERE (delivery_status = 'pending' AND next_attempt_at <= now())
                   OR (delivery_status = 'sending' AND claimed_at < now() - make_interval(secs => $2))
                ORDER BY next_attempt_at
                LIMIT $1
                FOR UPDATE SKIP LOCKED)
            RETURNING {_REQUEST_COLUMNS}""",
        limit,
        lease_seconds,
    )
    return [_request(r) for r in rows]


async def next_invitation_due_in(conn: asyncpg.Connection) -> float | None:
    """Seconds until the next pending invitation is due (0 if overdue), None if none is pending."""
    # Not greatest(..., 0) in SQL: greatest() skips NULLs, so "nothing pending" became "due now"
    # and the sender polled the database every 10 ms for ever.
    seconds = await conn.fetchval(
        """SELECT extract(epoch FROM min(next_attempt_at) - now())::float8
           FROM survey_requests WHERE delivery_status = 'pending'"""
    )
    return None if seconds is None else max(seconds, 0.0)


async def mark_sent(conn: asyncpg.Connection, request_id: str, *, message_id: str) -> None:
    await conn.execute(
        """UPDATE survey_requests SET delivery_status = 'sent', sent_at = now(), message_id = $2, last_error = NULL
           WHERE request_id = $1""",
        request_id,
        message_id,
    )


async def mark_retry(conn: asyncpg.Connection, request_id: str, *, delay_seconds: float, error: str) -> None:
    await conn.execute(
        """UPDATE survey_requests SET delivery_status = 'pending', claimed_at = NULL, last_error = $3,
                  next_attempt_at = now() + make_interval(secs => $2)
           WHERE request_id = $1""",
        request_id,
        delay_seconds,
        error[:1000],
    )


async def mark_failed(conn: asyncpg.Connection, request_id: str, *, error: str) -> None:
    await conn.execute(
        "UPDATE survey_requests SET delivery_status = 'failed', last_error = $2 WHERE request_id = $1",
        request_id,
        error[:1000],
    )


async def delivery_counts(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    rows = await conn.fetch("SELECT delivery_status, count(*) AS n FROM survey_requests GROUP BY delivery_status")
    return {r["delivery_status"]: r["n"] for r in rows}


# --- responses ---------------------------------------------------------------------------
async def add_response(
    conn: asyncpg.Connection,
    *,
    response_id: str,
    survey_id: str,
    request_id: str | None,
    submission_id: str | None,
    answers: dict,
    language: str | None,
    feedback_ids: list[str],
) -> bool:
    """Store a response; False when this request or submission was answered already."""
    inserted = await conn.fetchval(
        """INSERT INTO survey_responses (response_id, survey_id, request_id, submission_id, answers, language,
                                         feedback_ids)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7)
           ON CONFLICT DO NOTHING RETURNING true""",
        response_id, survey_id, request_id, submission_id,
        json.dumps(answers, ensure_ascii=False), language, feedback_ids,
    )
    return bool(inserted)


async def response_for_request(conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> str | None:
    return await conn.fetchval("SELECT response_id FROM survey_responses WHERE request_id = $1", request_id)
