"""What survey keeps about customers, for how long, and how it is erased.

Survey holds a request's customer (``survey_requests.customer``: name, email, phone, id, for the
invitation and the answer's feedback), the invitation mail (``mail_queue``: the address and name
in its bytes) and the answers (``survey_responses.answers``: free text). Retention clears the
customer and the text answers ``SURVEY_PERSONAL_DATA_DAYS`` after the request / the response (the
ratings stay); mail content goes after ``MAIL_CONTENT_DAYS``. An erasure does it at once for one
customer, forgets their invitations (one not sent yet never goes out) and suppresses their
addresses for good, as pseudonyms (``suppressions``, reason ``erased``). Requests about them from
before the erasure that arrive later are dropped.

This module and ``suppressions.py`` hold the SQL of these duties; ``repository.py`` the rest.
"""

from __future__ import annotations

import logging

import asyncpg

from services.survey import invitations, suppressions
from services.survey.settings import SurveySettings
from shared.contracts import Customer
from shared.db import in_batches
from shared.mail import queue
from shared.mail.message import InvalidAddress, normalize_address
from shared.privacy.erasure import Erasure
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

REQUEST_CUSTOMER = {"customer": "'{}'", "subjects": "'{}'"}
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


async def erase(conn: asyncpg.Connection, erasure: Erasure) -> None:
    rows = await conn.fetch(
        "SELECT request_id, customer, subjects FROM survey_requests WHERE subjects && $1::text[] FOR UPDATE",
        sorted(erasure.subjects),
    )
    ids = [r["request_id"] for r in rows]
    hashes = set()
    for row in rows:
        erasure.also(row["subjects"])
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
    erasure.count("survey_invitation_backlog", _count(await conn.execute(
        "DELETE FROM survey_invitation_backlog WHERE request_id = ANY($1::text[])", ids)))
    erasure.count("survey_requests", _count(await conn.execute(
        f"UPDATE survey_requests SET {_set(REQUEST_CUSTOMER)} WHERE request_id = ANY($1::text[])", ids)))


async def pseudonymise_backlog(pool: asyncpg.Pool, key: bytes, *, batch: int = 500) -> int:
    """Give requests recorded before migration 0100 their customer's pseudonyms (at start)."""
    async def step(conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT request_id, customer FROM survey_requests WHERE subjects IS NULL LIMIT $1 FOR UPDATE SKIP LOCKED",
            batch,
        )
        await conn.execute(
            """UPDATE survey_requests r SET subjects = string_to_array(u.subjects, ' ')
               FROM unnest($1::text[], $2::text[]) AS u (request_id, subjects) WHERE r.request_id = u.request_id""",
            [r["request_id"] for r in rows],
            [" ".join(Customer.model_validate_json(r["customer"]).pseudonyms(key)) for r in rows],
        )
        return len(rows)

    done = await in_batches(pool, step)
    if done:
        logger.info("survey requests from before pseudonyms upgraded", extra={"requests": done})
    return done
