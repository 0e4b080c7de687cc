"""The only module of survey with SQL."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.survey.schemas import StoredSurvey, SurveyDefinition, SurveySummary
from shared.contracts import Customer


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


async def survey_definition(conn: asyncpg.Connection, survey_id: str) -> SurveyDefinition | None:
    definition = await conn.fetchval("SELECT definition FROM surveys WHERE survey_id = $1", survey_id)
    return None if definition is None else SurveyDefinition.model_validate_json(definition)


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
    mail_id: str | None  # its invitation in mail_queue; None: no usable email address


_REQUEST_COLUMNS = "request_id, survey_id, kind, alert_id, customer, language, location, touchpoint, mail_id"


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
        mail_id=row["mail_id"],
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
    mail_id: str | None,
    subjects: list[str],
) -> bool:
    """Record a request; False when it was already recorded (a redelivered or repeated request).
    ``subjects``: the pseudonyms of the customer's contacts (what an erasure matches)."""
    inserted = await conn.fetchval(
        """INSERT INTO survey_requests (request_id, survey_id, kind, alert_id, customer, language, location,
                                        touchpoint, requested_at, mail_id, subjects)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6, $7, $8, $9, $10, $11)
           ON CONFLICT (request_id) DO NOTHING RETURNING true""",
        request_id, survey_id, kind, alert_id, customer.model_dump_json(exclude_none=True),
        language, location, touchpoint, requested_at, mail_id, subjects,
    )
    return bool(inserted)


async def get_request(conn: asyncpg.Connection, request_id: str, *, lock: bool = False) -> SurveyRequest | None:
    sql = f"SELECT {_REQUEST_COLUMNS} FROM survey_requests WHERE request_id = $1"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), request_id)
    return _request(row) if row else None


async def invitations_outside_the_queue(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Invitations whose state is not a mail's: ``unsendable`` (no usable address) and
    ``pending`` ones still in the upgrade backlog (not rendered yet)."""
    row = await conn.fetchrow(
        """SELECT (SELECT count(*) FROM survey_requests WHERE mail_id IS NULL) AS unsendable,
                  (SELECT count(*) FROM survey_invitation_backlog) AS backlog"""
    )
    return {"unsendable": row["unsendable"], "pending": row["backlog"]}


# Invitations the sender before the mail queue had not delivered (migration 0005).
async def claim_backlog(conn: asyncpg.Connection, *, limit: int) -> list[SurveyRequest]:
    """Take (lock, in the caller's transaction) up to ``limit`` requests from the backlog."""
    rows = await conn.fetch(
        f"""SELECT {_REQUEST_COLUMNS} FROM survey_requests WHERE request_id IN (
                SELECT request_id FROM survey_invitation_backlog ORDER BY request_id LIMIT $1
                FOR UPDATE SKIP LOCKED)""",
        limit,
    )
    return [_request(r) for r in rows]


async def settle_backlog(conn: asyncpg.Connection, mail_ids: dict[str, str | None]) -> None:
    """Each request's invitation mail (None: unsendable); they leave the backlog."""
    await conn.execute(
        """UPDATE survey_requests r SET mail_id = m.mail_id
           FROM unnest($1::text[], $2::text[]) AS m (request_id, mail_id) WHERE r.request_id = m.request_id""",
        list(mail_ids), list(mail_ids.values()),
    )
    await conn.execute("DELETE FROM survey_invitation_backlog WHERE request_id = ANY ($1::text[])", list(mail_ids))


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
