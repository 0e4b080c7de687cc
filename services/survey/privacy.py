"""What survey keeps about customers, for how long, and how it is erased.

Survey holds a request's customer (``survey_requests.customer``: name, email, phone, id, for the
invitation and the answer's feedback; ``contact_keys``, their pseudonyms; ``context``, the
invitation's free context), the invitation mail (``mail_queue``: the address and name in its
bytes), the answers (``survey_responses.answers``: free text) and partial answers
(``survey_drafts``). Retention clears the customer and the text answers
``SURVEY_PERSONAL_DATA_DAYS`` after the request / the response (the ratings stay), drafts go after
``SURVEY_DRAFT_RETENTION_DAYS``, mail content after ``MAIL_CONTENT_DAYS``. An erasure does it at
once for one customer (found by ``contact_keys``), forgets their invitations (one not sent yet
never goes out) and their drafts, and suppresses their addresses for good, as pseudonyms
(``suppressions``, reason ``erased``). Requests and triggering feedback about them from before
the erasure that arrive later are dropped (:func:`feedback_not_erased`, :func:`request_erased`).

This module and ``suppressions.py`` hold the SQL of these duties; ``repository.py`` the rest.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import asyncpg

from services.survey import invitations, suppressions
from services.survey.settings import SurveySettings
from shared.contracts import Customer, FeedbackReceived, SurveyRequested
from shared.db import in_batches
from shared.mail import queue
from shared.mail.message import InvalidAddress, normalize_address
from shared.privacy.erasure import Erasure, not_erased
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

REQUEST_CUSTOMER = {"customer": "'{}'", "contact_keys": "'{}'", "context": "'{}'"}
# Text answers go, ratings (numbers) stay.
RESPONSE_WORDS = {"answers": "(SELECT coalesce(jsonb_object_agg(a.k, a.v), '{}') FROM jsonb_each(answers) AS a (k, v) "
                             "WHERE jsonb_typeof(a.v) <> 'string')"}


def _set(columns: dict[str, str]) -> str:
    return ", ".join(f"{c} = {v}" for c, v in columns.items())


def _count(result: str) -> int:
    return int(result.split()[-1])


def retain(runtime: ServiceRuntime, settings: SurveySettings) -> None:
    """Register the retention of survey's tables holding personal data (mail: ``use_mail_queue``)."""
    days = settings.survey_personal_data_days
    runtime.retain("survey_requests", "requested_at", days, anonymise=REQUEST_CUSTOMER)
    runtime.retain("survey_responses", "submitted_at", days, anonymise=RESPONSE_WORDS)
    runtime.retain("survey_drafts", "updated_at", settings.survey_draft_retention_days)
    runtime.retain("survey_contacts", "decided_at", days)


async def feedback_not_erased(key: bytes, conn: asyncpg.Connection,
                              feedback: Sequence[FeedbackReceived]) -> list[FeedbackReceived]:
    """The feedback whose customer no erasure since it covers (what a trigger may invite)."""
    return await not_erased(conn, key, feedback, customer=lambda fb: fb.customer, at=lambda fb: fb.received_at)


async def request_erased(key: bytes, conn: asyncpg.Connection, request: SurveyRequested) -> bool:
    """Whether a survey request is about a customer erased since it was made (a late event)."""
    return not await not_erased(conn, key, [request], customer=lambda r: r.customer, at=lambda r: r.requested_at)


async def erase(conn: asyncpg.Connection, erasure: Erasure) -> None:
    rows = await conn.fetch(
        "SELECT request_id, customer, contact_keys FROM survey_requests WHERE contact_keys && $1::text[] FOR UPDATE",
        sorted(erasure.subjects),
    )
    ids = [r["request_id"] for r in rows]
    hashes = set()
    for row in rows:
        erasure.also(row["contact_keys"])
        email = Customer.model_validate_json(row["customer"]).email
        if email:  # as unsubscribe and the senders look it up: the address as given, and as mail goes to it
            hashes.add(suppressions.address_hash(erasure.key, email))
            try:
                hashes.add(suppressions.address_hash(erasure.key, normalize_address(email)))
            except InvalidAddress:
                pass
    hashes.update(s for s in erasure.subjects if s.startswith("email:"))
    erasure.count("suppressions", await suppressions.suppress_hashes(
        conn, sorted(hashes), reason="erased", at=erasure.applied_at, source="erasure"))
    erasure.count("survey_responses", _count(await conn.execute(
        f"""UPDATE survey_responses SET {_set(RESPONSE_WORDS)}
            WHERE request_id = ANY($1::text[]) AND jsonb_path_exists(answers, '$.* ? (@.type() == "string")')""",
        ids)))
    erasure.count("mail_queue", await queue.forget(conn, purpose=invitations.PURPOSE, refs=ids, now=erasure.applied_at))
    erasure.count("survey_contacts", _count(await conn.execute(
        "DELETE FROM survey_contacts WHERE request_id = ANY($1::text[])", ids)))
    erasure.count("survey_drafts", _count(await conn.execute(
        "DELETE FROM survey_drafts WHERE request_id = ANY($1::text[])", ids)))
    erasure.count("survey_invitation_backlog", _count(await conn.execute(
        "DELETE FROM survey_invitation_backlog WHERE request_id = ANY($1::text[])", ids)))
    erasure.count("survey_requests", _count(await conn.execute(
        f"UPDATE survey_requests SET {_set(REQUEST_CUSTOMER)} WHERE request_id = ANY($1::text[])", ids)))


async def pseudonymise_backlog(pool: asyncpg.Pool, key: bytes, *, batch: int = 500) -> int:
    """Give requests recorded before migration 0007 their customer's contact keys (at start)."""
    async def step(conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            """SELECT request_id, customer FROM survey_requests WHERE contact_keys_pending
               LIMIT $1 FOR UPDATE SKIP LOCKED""",
            batch,
        )
        await conn.execute(
            """UPDATE survey_requests r
               SET contact_keys = coalesce(string_to_array(nullif(u.keys, ''), ' '), '{}'), contact_keys_pending = false
               FROM unnest($1::text[], $2::text[]) AS u (request_id, keys) WHERE r.request_id = u.request_id""",
            [r["request_id"] for r in rows],
            [" ".join(Customer.model_validate_json(r["customer"]).pseudonyms(key)) for r in rows],
        )
        return len(rows)

    done = await in_batches(pool, step)
    if done:
        logger.info("survey requests from before pseudonyms upgraded", extra={"requests": done})
    return done
