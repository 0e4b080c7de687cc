"""The ``mail_queue`` table: the only SQL of the mail queue.

A service asks for the table with ``use_mail_queue`` (``shared.mail.runtime``);
it lives in the service's own schema (migration component ``mail``). Every time
stored here comes from the caller's :class:`shared.clock.Clock` (``now``), never
from the database's ``now()``, so tests can move time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import asyncpg

from shared.db import Statement


class MailState(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    UNCERTAIN = "uncertain"
    FAILED = "failed"


# Not yet delivered nor given up: what the oldest-pending gauge measures.
UNSETTLED = (MailState.PENDING, MailState.SENDING, MailState.UNCERTAIN)


def channel(schema: str) -> str:
    """The NOTIFY channel waking the sender of ``schema`` (channels are database-wide)."""
    return f"keymoment_mail_{schema}"


@dataclass(frozen=True)
class OutgoingMail:
    """A complete mail to send: rendered when it is decided, never again."""

    mail_id: str  # deterministic (derived from the domain row): enqueueing it again is a no-op
    purpose: str  # e.g. alert_notification, survey_invitation
    ref: str  # the owning domain row
    message_id: str  # the Message-ID header inside ``message``
    recipients: tuple[str, ...]  # SMTP envelope recipients (normalized addresses)
    message: bytes  # RFC 5322 bytes, e.g. from shared.mail.message.build_message
    not_before: datetime | None = None  # deferred: not sent before this (e.g. the end of quiet hours)


@dataclass(frozen=True)
class ClaimedMail:
    mail_id: str
    purpose: str
    ref: str
    message_id: str
    targets: tuple[str, ...]  # recipients neither delivered to nor refused yet
    delivered_to: tuple[str, ...]
    message: bytes
    attempts: int  # including this one


@dataclass(frozen=True)
class Claim:
    mails: list[ClaimedMail]
    next_due_in: float | None  # seconds until the next pending mail not claimed now is due (0: overdue); None: none


@dataclass(frozen=True)
class Outcome:
    """How one attempt of a claimed mail is recorded (:func:`finish`) and counted."""

    state: MailState  # sent, failed, uncertain, or pending (again at next_attempt_at)
    delivered: tuple[str, ...] = ()
    refused: dict[str, str] = field(default_factory=dict)
    next_attempt_at: datetime | None = None
    error: str | None = None
    counter: str | None = None  # the sender's counter: sent, retries, failed or uncertain


@dataclass(frozen=True)
class MailStatus:
    mail_id: str
    purpose: str
    ref: str
    state: MailState
    attempts: int
    message_id: str
    recipients: tuple[str, ...]
    delivered_to: tuple[str, ...]
    refused: dict[str, str]  # recipient -> the permanent refusal
    last_error: str | None
    created_at: datetime
    next_attempt_at: datetime
    sent_at: datetime | None


def enqueueing(statement: Statement, mails: Sequence[OutgoingMail], *, now: datetime, name: str = "mailed") -> None:
    """Add the queueing of ``mails`` to ``statement`` as the CTE ``name`` (returning the ids newly
    queued), with the sender's wake-up: the one way mails are queued, by :func:`enqueue` or
    as part of a caller's own statement. See :func:`enqueue` for what queueing means."""
    for mail in mails:
        if not mail.recipients:
            raise ValueError(f"mail {mail.mail_id} has no recipients")
    statement.cte(
        name,
        """INSERT INTO mail_queue (mail_id, purpose, ref, message_id, recipients, message, state, next_attempt_at,
                                   created_at)
           SELECT m.mail_id, m.purpose, m.ref, m.message_id, ARRAY(SELECT jsonb_array_elements_text(m.recipients)),
                  m.message, 'pending', greatest($7, m.not_before), greatest($7, m.not_before)
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::bytea[], $8::timestamptz[])
                AS m (mail_id, purpose, ref, message_id, recipients, message, not_before)
           ON CONFLICT (mail_id) DO NOTHING
           RETURNING mail_id""",
        [m.mail_id for m in mails],
        [m.purpose for m in mails],
        [m.ref for m in mails],
        [m.message_id for m in mails],
        [json.dumps(list(m.recipients)) for m in mails],
        [m.message for m in mails],
        now,
        [m.not_before for m in mails],
    )
    # one wake-up for the whole statement, delivered when the caller commits
    statement.select(f"(SELECT CASE WHEN count(*) > 0 THEN pg_notify('keymoment_mail_' || current_schema(), '') END "
                     f"FROM {name}) AS {name}_woke")


async def enqueue(conn: asyncpg.Connection, mails: Sequence[OutgoingMail], *, now: datetime) -> list[str]:
    """Queue ``mails`` in the caller's transaction (one statement however many), due at once
    (or at its ``not_before``: a deferred mail counts as created then, so the oldest-pending
    age measures how late it is, not how long it was meant to wait).

    Idempotent on ``mail_id``: a mail already queued (in any state) is left as it is.
    The sender is woken by a NOTIFY that PostgreSQL delivers when the transaction
    commits. Returns the ids newly queued.
    """
    if not mails:
        return []
    statement = Statement()
    enqueueing(statement, mails, now=now, name="added")
    statement.select("(SELECT coalesce(array_agg(mail_id), '{}') FROM added) AS ids")
    row = await statement.run(conn)
    return list(row["ids"])


async def withdraw(conn: asyncpg.Connection, mail_ids: Sequence[str]) -> list[str]:
    """Take back mails not sent yet and not being sent (``pending``): they are deleted and never
    go out (e.g. the recipient unsubscribed while the mail waited for the end of quiet hours).
    A mail being sent, or sent, stays. Returns the ids withdrawn."""
    rows = await conn.fetch(
        "DELETE FROM mail_queue WHERE mail_id = ANY ($1::text[]) AND state = 'pending' RETURNING mail_id",
        list(mail_ids),
    )
    return [r["mail_id"] for r in rows]


async def claim(
    conn: asyncpg.Connection, *, worker: str, now: datetime, lease_seconds: float, limit: int
) -> Claim:
    """Move up to ``limit`` due mails to ``sending`` for ``worker`` (committed before any SMTP
    traffic), and say when the next of the others is due: one statement. Several senders never
    claim the same mail (``FOR UPDATE SKIP LOCKED``)."""
    # MATERIALIZED: the due rows are picked once. As ``mail_id IN (SELECT ... LIMIT n FOR UPDATE SKIP
    # LOCKED)`` the planner may rescan the subquery per row (a nested-loop semi join) and claim more than n.
    # The statement's snapshot still shows the claimed rows pending: they are left out of the next due.
    rows = await conn.fetch(
        """WITH due AS MATERIALIZED (
               SELECT mail_id FROM mail_queue WHERE state = 'pending' AND next_attempt_at <= $1
               ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED),
           claimed AS (
               UPDATE mail_queue q SET state = 'sending', attempts = q.attempts + 1, claimed_by = $2, lease_until = $3
               FROM due WHERE q.mail_id = due.mail_id AND q.state = 'pending'
               RETURNING q.mail_id, q.purpose, q.ref, q.message_id, q.message, q.attempts, q.delivered_to,
                         ARRAY(SELECT r FROM unnest(q.recipients) r
                               WHERE r <> ALL (q.delivered_to) AND NOT q.refused ? r) AS targets)
           SELECT n.next_due, c.* FROM
               (SELECT min(next_attempt_at) AS next_due FROM mail_queue
                WHERE state = 'pending' AND mail_id NOT IN (SELECT mail_id FROM due)) n
               LEFT JOIN claimed c ON true""",
        now, worker, now + timedelta(seconds=lease_seconds), limit,
    )
    due = rows[0]["next_due"]
    return Claim(
        mails=[
            ClaimedMail(
                mail_id=r["mail_id"], purpose=r["purpose"], ref=r["ref"], message_id=r["message_id"],
                targets=tuple(r["targets"]), delivered_to=tuple(r["delivered_to"]), message=r["message"],
                attempts=r["attempts"],
            )
            for r in rows if r["mail_id"] is not None
        ],
        next_due_in=None if due is None else max((due - now).total_seconds(), 0.0),
    )


async def renew(conn: asyncpg.Connection, *, worker: str, lease_until: datetime) -> int:
    """Extend the lease of every mail ``worker`` holds (it is alive)."""
    result = await conn.execute(
        "UPDATE mail_queue SET lease_until = $2 WHERE state = 'sending' AND claimed_by = $1", worker, lease_until
    )
    return int(result.split()[-1])


async def finish(
    conn: asyncpg.Connection, outcomes: Mapping[str, Outcome], *, worker: str, now: datetime
) -> set[str]:
    """Record the outcome of one attempt of each of these mails ``worker`` holds (mail id ->
    outcome), in one statement however many. Returns the ids recorded: a mail missing is no
    longer this worker's (its lease ran out and it was settled elsewhere, or it was forgotten)."""
    if any(o.state is MailState.SENDING for o in outcomes.values()):
        raise ValueError("finish() records outcomes, not claims")
    if not outcomes:
        return set()
    ids = list(outcomes)
    done = [outcomes[i] for i in ids]
    rows = await conn.fetch(
        """UPDATE mail_queue q SET state = o.state, claimed_by = NULL, lease_until = NULL,
                  delivered_to = q.delivered_to || ARRAY(SELECT jsonb_array_elements_text(o.delivered)),
                  refused = q.refused || o.refused, next_attempt_at = coalesce(o.next_attempt_at, q.next_attempt_at),
                  last_error = o.error, sent_at = CASE WHEN o.state = 'sent' THEN $3 ELSE q.sent_at END
           FROM unnest($1::text[], $4::text[], $5::jsonb[], $6::jsonb[], $7::timestamptz[], $8::text[])
                AS o (mail_id, state, delivered, refused, next_attempt_at, error)
           WHERE q.mail_id = o.mail_id AND q.state = 'sending' AND q.claimed_by = $2
           RETURNING q.mail_id""",
        ids, worker, now,
        [o.state.value for o in done],
        [json.dumps(list(o.delivered), ensure_ascii=False) for o in done],
        [json.dumps(o.refused, ensure_ascii=False) for o in done],
        [o.next_attempt_at for o in done],
        [o.error[:1000] if o.error else None for o in done],
    )
    return {r["mail_id"] for r in rows}


async def release(conn: asyncpg.Connection, *, worker: str, keep: Sequence[str] = ()) -> list[str]:
    """Give back what ``worker`` claimed but never started (graceful stop): pending again,
    the claim's attempt not counted. ``keep``: mails it did start (settled separately)."""
    rows = await conn.fetch(
        """UPDATE mail_queue SET state = 'pending', attempts = attempts - 1, claimed_by = NULL, lease_until = NULL
           WHERE state = 'sending' AND claimed_by = $1 AND mail_id <> ALL ($2::text[]) RETURNING mail_id""",
        worker, list(keep),
    )
    return [r["mail_id"] for r in rows]


async def mark_unknown(
    conn: asyncpg.Connection, mail_ids: Sequence[str], *, resend: bool, now: datetime, error: str,
    worker: str | None = None,
) -> list[tuple[str, str]]:
    """Mails whose SMTP outcome is unknown: ``pending`` now (resend policy) or ``uncertain``.
    Returns ``(mail_id, purpose)`` of those changed."""
    rows = await conn.fetch(
        """UPDATE mail_queue SET state = CASE WHEN $2 THEN 'pending' ELSE 'uncertain' END,
                  claimed_by = NULL, lease_until = NULL, next_attempt_at = $3, last_error = $4
           WHERE state = 'sending' AND mail_id = ANY ($1::text[]) AND ($5::text IS NULL OR claimed_by = $5)
           RETURNING mail_id, purpose""",
        list(mail_ids), resend, now, error[:1000], worker,
    )
    return [(r["mail_id"], r["purpose"]) for r in rows]


async def settle_expired(conn: asyncpg.Connection, *, now: datetime, resend: bool) -> list[tuple[str, str]]:
    """Mails left ``sending`` past their lease (the process holding them died, perhaps
    during DATA): their outcome is unknown. Returns ``(mail_id, purpose)``."""
    rows = await conn.fetch(
        """UPDATE mail_queue SET state = CASE WHEN $2 THEN 'pending' ELSE 'uncertain' END,
                  claimed_by = NULL, lease_until = NULL, next_attempt_at = $1,
                  last_error = 'the sender holding it stopped (lease ran out): delivery unknown'
           WHERE mail_id IN (SELECT mail_id FROM mail_queue WHERE state = 'sending' AND lease_until < $1
                             FOR UPDATE SKIP LOCKED)
           RETURNING mail_id, purpose""",
        now, resend,
    )
    return [(r["mail_id"], r["purpose"]) for r in rows]


async def requeue(conn: asyncpg.Connection, mail_ids: Sequence[str], *, now: datetime) -> list[str]:
    """Send ``uncertain`` or ``failed`` mails again (a person decided to): pending, due now,
    to the recipients not yet delivered to (permanent refusals are forgotten)."""
    rows = await conn.fetch(
        """UPDATE mail_queue SET state = 'pending', next_attempt_at = $2, refused = '{}'
           WHERE mail_id = ANY ($1::text[]) AND state IN ('uncertain', 'failed') AND message IS NOT NULL
           RETURNING mail_id""",
        list(mail_ids), now,
    )
    return [r["mail_id"] for r in rows]


# Forgetting a mail (its content's retention, a customer's erasure): the bytes, recipients,
# delivery lists and last error go, the record stays; a mail not yet sent is given up with it,
# so it never goes out. SQL assignments (``runtime.retain``'s ``anonymise``); $2 is now.
FORGET: dict[str, str] = {
    "message": "NULL",
    "recipients": "'{}'",
    "delivered_to": "'{}'",
    "refused": "'{}'",
    "state": "CASE WHEN state = 'sent' THEN 'sent' ELSE 'failed' END",
    "claimed_by": "NULL",
    "lease_until": "NULL",
    "last_error": "CASE WHEN state = 'sent' THEN NULL ELSE 'not sent; its content was forgotten' END",
    "forgotten_at": "coalesce(forgotten_at, $2)",
}
SETTLED = "state IN ('sent', 'failed')"
"""The mails whose content's retention runs: delivered or given up."""


async def forget(conn: asyncpg.Connection, *, purpose: str, refs: Sequence[str], now: datetime) -> int:
    """Forget the mails of these domain rows (a customer's erasure), whatever their state: a
    mail not yet sent is given up and never goes out (one being sent this instant may still
    reach the relay; its outcome is then not recorded). Returns how many were forgotten."""
    if not refs:
        return 0
    result = await conn.execute(
        f"""UPDATE mail_queue SET {', '.join(f'{c} = {v}' for c, v in FORGET.items())}
            WHERE purpose = $1 AND ref = ANY($3::text[]) AND forgotten_at IS NULL""",
        purpose, now, list(refs),
    )
    return int(result.split()[-1])


async def oldest_unsettled(conn: asyncpg.Connection | asyncpg.Pool, *, now: datetime) -> dict[str, float]:
    """Per purpose, the age in seconds of the oldest mail neither delivered nor given up."""
    rows = await conn.fetch(
        """SELECT purpose, min(created_at) AS oldest FROM mail_queue
           WHERE state IN ('pending', 'sending', 'uncertain') GROUP BY purpose"""
    )
    return {r["purpose"]: max((now - r["oldest"]).total_seconds(), 0.0) for r in rows}


async def state_counts(conn: asyncpg.Connection | asyncpg.Pool, *, purpose: str) -> dict[str, int]:
    rows = await conn.fetch("SELECT state, count(*) AS n FROM mail_queue WHERE purpose = $1 GROUP BY state", purpose)
    return {r["state"]: r["n"] for r in rows}


_STATUS_COLUMNS = """mail_id, purpose, ref, state, attempts, message_id, recipients, delivered_to, refused, last_error,
                     created_at, next_attempt_at, sent_at"""


def _status(r: asyncpg.Record) -> MailStatus:
    return MailStatus(
        mail_id=r["mail_id"], purpose=r["purpose"], ref=r["ref"], state=MailState(r["state"]), attempts=r["attempts"],
        message_id=r["message_id"], recipients=tuple(r["recipients"]), delivered_to=tuple(r["delivered_to"]),
        refused=json.loads(r["refused"]), last_error=r["last_error"], created_at=r["created_at"],
        next_attempt_at=r["next_attempt_at"], sent_at=r["sent_at"],
    )


async def statuses(conn: asyncpg.Connection | asyncpg.Pool, mail_ids: Sequence[str]) -> dict[str, MailStatus]:
    """Delivery status of each of ``mail_ids`` that is queued."""
    rows = await conn.fetch(
        f"SELECT {_STATUS_COLUMNS} FROM mail_queue WHERE mail_id = ANY ($1::text[])", list(mail_ids)
    )
    return {r["mail_id"]: _status(r) for r in rows}


async def statuses_by_ref(
    conn: asyncpg.Connection | asyncpg.Pool, *, purpose: str, refs: Sequence[str]
) -> dict[str, list[MailStatus]]:
    """The mails of each of ``refs`` (domain rows with one mail per recipient, say), oldest first."""
    rows = await conn.fetch(
        f"""SELECT {_STATUS_COLUMNS} FROM mail_queue WHERE purpose = $1 AND ref = ANY ($2::text[])
            ORDER BY created_at, mail_id""",
        purpose, list(refs),
    )
    found: dict[str, list[MailStatus]] = {}
    for r in rows:
        found.setdefault(r["ref"], []).append(_status(r))
    return found
