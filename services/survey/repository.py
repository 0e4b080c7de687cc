"""The only module of survey with SQL."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from services.survey.schemas import StoredSurvey, SurveyDefinition, SurveySummary, SurveyVersion
from shared.contracts import Customer
from shared import outbox
from shared.db import advisory_key
from shared.events import Envelope


# --- surveys and their versions ------------------------------------------------------------
def _dump(survey: SurveyDefinition) -> str:
    return survey.model_dump_json(exclude_none=True, exclude_defaults=False)


async def create_survey(conn: asyncpg.Connection, survey: SurveyDefinition, *, now: datetime) -> datetime | None:
    """Store a new survey as its version 1; None when the id is taken."""
    created_at = await conn.fetchval(
        """INSERT INTO surveys (survey_id, definition, version, created_at) VALUES ($1, $2::jsonb, 1, $3)
           ON CONFLICT (survey_id) DO NOTHING RETURNING created_at""",
        survey.id, _dump(survey), now,
    )
    if created_at is not None:
        await conn.execute(
            "INSERT INTO survey_versions (survey_id, version, definition, created_at) VALUES ($1, 1, $2::jsonb, $3)",
            survey.id, _dump(survey), now,
        )
    return created_at


async def add_version(conn: asyncpg.Connection, survey: SurveyDefinition, *, now: datetime) -> tuple[int, bool] | None:
    """Make ``survey`` the current definition of its id: a new version, unless it equals the
    current one. Returns ``(version, created)``; None when there is no such survey."""
    row = await conn.fetchrow("SELECT definition, version FROM surveys WHERE survey_id = $1 FOR UPDATE", survey.id)
    if row is None:
        return None
    if SurveyDefinition.stored(row["definition"]) == survey:
        return row["version"], False
    version = row["version"] + 1
    await conn.execute(
        "INSERT INTO survey_versions (survey_id, version, definition, created_at) VALUES ($1, $2, $3::jsonb, $4)",
        survey.id, version, _dump(survey), now,
    )
    await conn.execute("UPDATE surveys SET definition = $2::jsonb, version = $3 WHERE survey_id = $1",
                       survey.id, _dump(survey), version)
    return version, True


async def get_survey(conn: asyncpg.Connection | asyncpg.Pool, survey_id: str) -> StoredSurvey | None:
    row = await conn.fetchrow(
        """SELECT s.definition, s.version, s.builtin, s.created_at,
                  (SELECT count(*) FROM survey_responses r WHERE r.survey_id = s.survey_id) AS responses
           FROM surveys s WHERE s.survey_id = $1""",
        survey_id,
    )
    if row is None:
        return None
    return StoredSurvey(
        definition=SurveyDefinition.stored(row["definition"]),
        version=row["version"],
        builtin=row["builtin"],
        created_at=row["created_at"],
        responses=row["responses"],
    )


class Definitions:
    """Parsed definitions by survey and version. A version never changes once stored, so the
    pages parse each one once (the hot path reads the text, not the model, per request).

    The public pages also keep which version is a survey's current one for ``fresh_for`` seconds
    (:meth:`current`): a page shown, or an answer taken, up to that long after an edit on another
    replica uses the version before it — as for a respondent who opened the page before the edit
    (every response records its version). An edit through this process is seen at once."""

    def __init__(self, size: int = 512, *, fresh_for: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.size = size
        self.fresh_for = fresh_for
        self._clock = clock
        self._parsed: dict[tuple[str, int], SurveyDefinition] = {}
        self._current: dict[str, tuple[float, tuple[SurveyDefinition, int] | None]] = {}

    async def current(self, conn: asyncpg.Connection | asyncpg.Pool,
                      survey_id: str) -> tuple[SurveyDefinition, int] | None:
        """The survey's current definition and version, read at most every ``fresh_for`` seconds."""
        now = self._clock()
        cached = self._current.get(survey_id)
        if cached is not None and now - cached[0] < self.fresh_for:
            return cached[1]
        found = await current(conn, survey_id, parsed=self)
        if len(self._current) >= self.size:
            self._current.clear()
        self._current[survey_id] = (now, found)
        return found

    def forget(self, survey_id: str) -> None:
        """The survey changed here: read its current version again next time."""
        self._current.pop(survey_id, None)

    def parse(self, survey_id: str, version: int, raw: str) -> SurveyDefinition:
        found = self._parsed.get((survey_id, version))
        if found is None:
            if len(self._parsed) >= self.size:
                self._parsed.clear()
            found = self._parsed[(survey_id, version)] = SurveyDefinition.stored(raw)
        return found


async def current(conn: asyncpg.Connection | asyncpg.Pool, survey_id: str, *,
                  parsed: Definitions | None = None) -> tuple[SurveyDefinition, int] | None:
    """A survey's current definition and version (no response count: the pages' read)."""
    row = await conn.fetchrow("SELECT definition, version FROM surveys WHERE survey_id = $1", survey_id)
    if row is None:
        return None
    if parsed is not None:
        return parsed.parse(survey_id, row["version"], row["definition"]), row["version"]
    return SurveyDefinition.stored(row["definition"]), row["version"]


async def survey_definition(conn: asyncpg.Connection, survey_id: str) -> SurveyDefinition | None:
    found = await current(conn, survey_id)
    return found[0] if found else None


async def version_of(conn: asyncpg.Connection | asyncpg.Pool, survey_id: str, version: int, *,
                     parsed: Definitions | None = None) -> SurveyDefinition | None:
    definition = await conn.fetchval(
        "SELECT definition FROM survey_versions WHERE survey_id = $1 AND version = $2", survey_id, version)
    if definition is None:
        return None
    return parsed.parse(survey_id, version, definition) if parsed else SurveyDefinition.stored(definition)


async def versions(conn: asyncpg.Connection | asyncpg.Pool, survey_id: str) -> list[SurveyVersion]:
    rows = await conn.fetch(
        "SELECT version, created_at, definition FROM survey_versions WHERE survey_id = $1 ORDER BY version", survey_id)
    return [SurveyVersion(version=r["version"], created_at=r["created_at"],
                          survey=SurveyDefinition.stored(r["definition"])) for r in rows]


async def list_surveys(conn: asyncpg.Connection | asyncpg.Pool, *, limit: int, offset: int) -> list[SurveySummary]:
    rows = await conn.fetch(
        """SELECT s.definition, s.version, s.builtin, s.created_at, coalesce(r.n, 0) AS responses
           FROM surveys s
           LEFT JOIN (SELECT survey_id, count(*) AS n FROM survey_responses GROUP BY survey_id) r USING (survey_id)
           ORDER BY s.created_at, s.survey_id LIMIT $1 OFFSET $2""",
        limit,
        offset,
    )
    out = []
    for row in rows:
        d = SurveyDefinition.stored(row["definition"])
        out.append(
            SurveySummary(
                id=d.id, version=row["version"], title=d.title, access=d.access, questions=len(d.questions),
                builtin=row["builtin"], created_at=row["created_at"], responses=row["responses"],
            )
        )
    return out


async def triggered_surveys(conn: asyncpg.Connection, *,
                            parsed: Definitions | None = None) -> list[tuple[SurveyDefinition, int]]:
    """The surveys whose current version has triggers."""
    rows = await conn.fetch(
        """SELECT survey_id, definition, version FROM surveys
           WHERE jsonb_typeof(definition -> 'triggers') = 'array' AND jsonb_array_length(definition -> 'triggers') > 0
           ORDER BY survey_id"""
    )
    if parsed is not None:
        return [(parsed.parse(r["survey_id"], r["version"], r["definition"]), r["version"]) for r in rows]
    return [(SurveyDefinition.stored(r["definition"]), r["version"]) for r in rows]


async def has_feedback_trigger(conn: asyncpg.Connection | asyncpg.Pool) -> bool:
    """Whether any survey's current version invites after feedback (survey's consumer passes
    ``feedback.received.v1`` over unread while none does)."""
    return await conn.fetchval(
        """SELECT EXISTS (SELECT 1 FROM surveys, jsonb_array_elements(CASE jsonb_typeof(definition -> 'triggers')
                                                                     WHEN 'array' THEN definition -> 'triggers' END) AS t
                          WHERE t ->> 'on' = 'feedback')""")


# --- invitations (survey_requests) --------------------------------------------------------
@dataclass(frozen=True)
class SurveyRequest:
    """One invitation: asked by the API, a trigger, or alerts (survey.requested.v1)."""

    request_id: str
    survey_id: str
    kind: str  # api | trigger | recovery
    alert_id: str | None
    customer: Customer
    language: str | None
    location: str | None
    touchpoint: str | None
    mail_id: str | None  # its invitation in mail_queue; None: skipped (or not rendered yet: upgrade backlog)
    status: str = "queued"
    skip_reason: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    survey_version: int | None = None
    send_at: datetime | None = None
    request_hash: str | None = None
    decided_at: datetime | None = None

    @property
    def recovery(self) -> bool:
        return self.alert_id is not None


_REQUEST_COLUMNS = ("request_id, survey_id, kind, alert_id, customer, language, location, touchpoint, mail_id, "
                    "status, skip_reason, context, survey_version, send_at, request_hash, decided_at")


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
        status=row["status"],
        skip_reason=row["skip_reason"],
        context=json.loads(row["context"]),
        survey_version=row["survey_version"],
        send_at=row["send_at"],
        request_hash=row["request_hash"],
        decided_at=row["decided_at"],
    )


@dataclass(frozen=True)
class NewInvitation:
    """A row of ``survey_requests`` about to be written."""

    request_id: str
    survey_id: str
    survey_version: int | None
    kind: str
    alert_id: str | None
    customer: Customer
    language: str | None
    location: str | None
    touchpoint: str | None
    requested_at: datetime
    decided_at: datetime
    status: str
    skip_reason: str | None
    mail_id: str | None
    send_at: datetime | None
    contact_keys: list[str]
    context: dict[str, Any]
    time_zone: str | None
    client_key: str | None
    request_hash: str | None
    requested_by: str | None


async def add_invitations(conn: asyncpg.Connection, rows: Sequence[NewInvitation]) -> set[str]:
    """Record invitations (one statement); returns the ids newly recorded (a repeated id is left
    as it was: a redelivered request, or an idempotency key sent again)."""
    if not rows:
        return set()
    recorded = await conn.fetch(
        """INSERT INTO survey_requests (request_id, survey_id, survey_version, kind, alert_id, customer, language,
                                        location, touchpoint, requested_at, decided_at, status, skip_reason, mail_id,
                                        send_at, contact_keys, context, time_zone, client_key, request_hash,
                                        requested_by)
           SELECT r.request_id, r.survey_id, r.survey_version, r.kind, r.alert_id, r.customer, r.language, r.location,
                  r.touchpoint, r.requested_at, r.decided_at, r.status, r.skip_reason, r.mail_id, r.send_at,
                  ARRAY(SELECT jsonb_array_elements_text(r.contact_keys)), r.context, r.time_zone, r.client_key,
                  r.request_hash, r.requested_by
           FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[], $6::jsonb[], $7::text[], $8::text[],
                       $9::text[], $10::timestamptz[], $11::timestamptz[], $12::text[], $13::text[], $14::text[],
                       $15::timestamptz[], $16::jsonb[], $17::jsonb[], $18::text[], $19::text[], $20::text[],
                       $21::text[])
                AS r (request_id, survey_id, survey_version, kind, alert_id, customer, language, location, touchpoint,
                      requested_at, decided_at, status, skip_reason, mail_id, send_at, contact_keys, context,
                      time_zone, client_key, request_hash, requested_by)
           ON CONFLICT DO NOTHING
           RETURNING request_id""",
        [r.request_id for r in rows], [r.survey_id for r in rows], [r.survey_version for r in rows],
        [r.kind for r in rows], [r.alert_id for r in rows],
        [r.customer.model_dump_json(exclude_none=True) for r in rows], [r.language for r in rows],
        [r.location for r in rows], [r.touchpoint for r in rows], [r.requested_at for r in rows],
        [r.decided_at for r in rows], [r.status for r in rows], [r.skip_reason for r in rows],
        [r.mail_id for r in rows], [r.send_at for r in rows], [json.dumps(r.contact_keys) for r in rows],
        [json.dumps(r.context, ensure_ascii=False) for r in rows], [r.time_zone for r in rows],
        [r.client_key for r in rows], [r.request_hash for r in rows], [r.requested_by for r in rows],
    )
    ids = {r["request_id"] for r in recorded}
    queued = [r for r in rows if r.status == "queued" and r.request_id in ids and r.contact_keys]
    if queued:  # what the contact rules count (``contacts``)
        await conn.execute(
            """INSERT INTO survey_contacts (contact_key, decided_at, request_id, survey_id)
               SELECT DISTINCT k, u.decided_at, u.request_id, u.survey_id
               FROM unnest($1::text[], $2::timestamptz[], $3::text[], $4::text[])
                    AS u (contact_keys, decided_at, request_id, survey_id),
                    unnest(string_to_array(u.contact_keys, ' ')) AS k
               ON CONFLICT DO NOTHING""",
            [" ".join(r.contact_keys) for r in queued], [r.decided_at for r in queued],
            [r.request_id for r in queued], [r.survey_id for r in queued],
        )
    return ids


async def get_request(conn: asyncpg.Connection | asyncpg.Pool, request_id: str, *,
                      lock: bool = False) -> SurveyRequest | None:
    sql = f"SELECT {_REQUEST_COLUMNS} FROM survey_requests WHERE request_id = $1"
    row = await conn.fetchrow(sql + (" FOR UPDATE" if lock else ""), request_id)
    return _request(row) if row else None


async def get_requests(conn: asyncpg.Connection, request_ids: Sequence[str]) -> dict[str, SurveyRequest]:
    rows = await conn.fetch(f"SELECT {_REQUEST_COLUMNS} FROM survey_requests WHERE request_id = ANY ($1::text[])",
                            list(request_ids))
    return {r["request_id"]: _request(r) for r in rows}


async def lock_contacts(conn: asyncpg.Connection, contact_keys: Sequence[str]) -> None:
    """Serialise the contact rules per customer until the caller's transaction ends: two
    invitations for one customer are decided one after the other (locks taken in one order)."""
    keys = sorted({advisory_key(f"survey.contact.{k}") for k in contact_keys})
    if keys:
        await conn.execute("SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k", keys)


async def contacts(conn: asyncpg.Connection, contact_keys: Sequence[str], *,
                   since: datetime) -> list[tuple[str, str, str, datetime]]:
    """Queued invitations since ``since`` of the customers any of ``contact_keys`` names:
    ``(the contact key it matched, request id, survey id, decided at)``, a row per key matched."""
    if not contact_keys:
        return []
    rows = await conn.fetch(
        """SELECT contact_key, request_id, survey_id, decided_at FROM survey_contacts
           WHERE contact_key = ANY($1::text[]) AND decided_at > $2""",
        sorted(set(contact_keys)), since,
    )
    return [(r["contact_key"], r["request_id"], r["survey_id"], r["decided_at"]) for r in rows]


FUNNEL_COLUMNS = {"delivered": "delivered_at", "opened": "opened_at", "started": "started_at",
                  "completed": "completed_at", "unsubscribed": "unsubscribed_at"}


async def mark_step(conn: asyncpg.Connection, request_id: str, step: str, *, at: datetime) -> SurveyRequest | None:
    """Record a funnel step of an invitation the first time it happens; None when it had
    happened before (or there is no such invitation)."""
    column = FUNNEL_COLUMNS[step]  # a fixed allow-list, never request text
    row = await conn.fetchrow(
        f"UPDATE survey_requests SET {column} = $2 WHERE request_id = $1 AND {column} IS NULL "  # noqa: S608
        f"RETURNING {_REQUEST_COLUMNS}",
        request_id, at,
    )
    return _request(row) if row else None


async def steps(conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> dict[str, datetime]:
    """When each funnel step of an invitation happened (``invited`` or ``skipped``: the decision)."""
    row = await conn.fetchrow(
        f"SELECT status, decided_at, {', '.join(FUNNEL_COLUMNS.values())} FROM survey_requests "  # noqa: S608
        "WHERE request_id = $1", request_id)
    if row is None:
        return {}
    found = {"invited" if row["status"] == "queued" else "skipped": row["decided_at"]}
    return found | {step: row[column] for step, column in FUNNEL_COLUMNS.items() if row[column] is not None}


async def undelivered_for_contact(conn: asyncpg.Connection, contact_key: str) -> list[str]:
    """Mail ids of a customer's queued invitations not delivered yet."""
    return [r["mail_id"] for r in await conn.fetch(
        """SELECT mail_id FROM survey_requests
           WHERE status = 'queued' AND delivered_at IS NULL AND mail_id IS NOT NULL AND contact_keys @> ARRAY[$1]""",
        contact_key,
    )]


async def forget_mails(conn: asyncpg.Connection, mail_ids: Sequence[str]) -> None:
    """These invitations' mails were withdrawn from the queue: they have none any more."""
    await conn.execute("UPDATE survey_requests SET mail_id = NULL WHERE mail_id = ANY ($1::text[])", list(mail_ids))


async def invitations_outside_the_queue(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, int]:
    """Invitations whose state is not a mail's: ``unsendable`` (no usable address), ``skipped``
    (the other contact rules), ``withdrawn`` (queued, then the customer unsubscribed before it was
    sent) and ``pending`` ones still in the upgrade backlog (not rendered yet)."""
    row = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'skipped' AND skip_reason = 'no_address') AS unsendable,
                  count(*) FILTER (WHERE status = 'skipped' AND skip_reason <> 'no_address') AS skipped,
                  count(*) FILTER (WHERE status = 'queued' AND mail_id IS NULL) AS withdrawn,
                  (SELECT count(*) FROM survey_invitation_backlog) AS backlog
           FROM survey_requests"""
    )
    return {"unsendable": row["unsendable"], "skipped": row["skipped"], "withdrawn": row["withdrawn"],
            "pending": row["backlog"]}


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
        """UPDATE survey_requests r SET mail_id = m.mail_id,
                  status = CASE WHEN m.mail_id IS NULL THEN 'skipped' ELSE 'queued' END,
                  skip_reason = CASE WHEN m.mail_id IS NULL THEN 'no_address' END
           FROM unnest($1::text[], $2::text[]) AS m (request_id, mail_id) WHERE r.request_id = m.request_id""",
        list(mail_ids), list(mail_ids.values()),
    )
    await conn.execute("DELETE FROM survey_invitation_backlog WHERE request_id = ANY ($1::text[])", list(mail_ids))


# --- partial answers ------------------------------------------------------------------------
async def save_draft(conn: asyncpg.Connection, draft_key: str, *, survey_id: str, version: int,
                     request_id: str | None, answers: dict, now: datetime) -> None:
    await conn.execute(
        """INSERT INTO survey_drafts (draft_key, survey_id, survey_version, request_id, answers, updated_at)
           VALUES ($1, $2, $3, $4, $5::jsonb, $6)
           ON CONFLICT (draft_key) DO UPDATE SET survey_version = EXCLUDED.survey_version,
               answers = EXCLUDED.answers, updated_at = EXCLUDED.updated_at""",
        draft_key, survey_id, version, request_id, json.dumps(answers, ensure_ascii=False), now,
    )


async def get_draft(conn: asyncpg.Connection | asyncpg.Pool, draft_key: str) -> dict | None:
    answers = await conn.fetchval("SELECT answers FROM survey_drafts WHERE draft_key = $1", draft_key)
    return None if answers is None else json.loads(answers)


# --- responses ---------------------------------------------------------------------------
async def add_response(
    conn: asyncpg.Connection,
    *,
    response_id: str,
    survey_id: str,
    survey_version: int,
    request_id: str | None,
    submission_id: str | None,
    answers: dict,
    language: str | None,
    feedback_ids: list[str],
    submitted_at: datetime,
    draft_key: str | None = None,
    events: Sequence[tuple[str, Envelope]] = (),
) -> bool:
    """Store a response, drop its partial answers (``draft_key``) and write its ``events`` to the
    outbox, all in one statement (atomic without a transaction of its own: a public page's POST
    is this one round trip); False, and no event, when this request or submission was answered
    already."""
    inserted = await conn.fetchval(
        f"""WITH dropped AS (DELETE FROM survey_drafts WHERE draft_key = $10),
                 stored AS (
                   INSERT INTO survey_responses (response_id, survey_id, survey_version, request_id, submission_id,
                                                 answers, language, feedback_ids, submitted_at)
                   VALUES ($1, $2, $3, $4, $5, $6::jsonb, $7, $8, $9)
                   ON CONFLICT DO NOTHING RETURNING true AS ok),
                 announced AS ({outbox.insert_sql(11, where="EXISTS (SELECT FROM stored)")})
            SELECT (SELECT ok FROM stored), {outbox.NOTIFY_SQL}""",
        response_id, survey_id, survey_version, request_id, submission_id,
        json.dumps(answers, ensure_ascii=False), language, feedback_ids, submitted_at, draft_key,
        *outbox.outbox_columns(events),
    )
    return bool(inserted)


async def response_for_request(conn: asyncpg.Connection | asyncpg.Pool, request_id: str) -> str | None:
    return await conn.fetchval("SELECT response_id FROM survey_responses WHERE request_id = $1", request_id)


async def response_for_submission(conn: asyncpg.Connection | asyncpg.Pool, survey_id: str,
                                  submission_id: str) -> str | None:
    return await conn.fetchval(
        "SELECT response_id FROM survey_responses WHERE survey_id = $1 AND submission_id = $2", survey_id, submission_id)


# --- API tokens --------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiToken:
    token_id: str
    subject: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None


async def add_token(conn: asyncpg.Connection | asyncpg.Pool, token: ApiToken) -> None:
    await conn.execute(
        "INSERT INTO api_tokens (token_id, subject, scopes, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        token.token_id, token.subject, token.scopes, token.created_at, token.expires_at,
    )


async def tokens(conn: asyncpg.Connection | asyncpg.Pool) -> list[ApiToken]:
    rows = await conn.fetch("SELECT * FROM api_tokens ORDER BY created_at, token_id")
    return [ApiToken(**dict(r)) for r in rows]


async def revoke_token(conn: asyncpg.Connection | asyncpg.Pool, token_id: str, *, at: datetime) -> bool:
    """Revoke a token (the first revocation's time is kept); False when there is no such token."""
    return await conn.fetchval(
        """UPDATE api_tokens SET revoked_at = coalesce(revoked_at, $2) WHERE token_id = $1 RETURNING true""",
        token_id, at,
    ) is True


async def token_revoked(conn: asyncpg.Connection | asyncpg.Pool, token_id: str) -> bool:
    """True when the token was revoked or is unknown here (never usable)."""
    row = await conn.fetchrow("SELECT revoked_at FROM api_tokens WHERE token_id = $1", token_id)
    return row is None or row["revoked_at"] is not None
