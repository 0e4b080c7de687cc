"""The erasure register: taking erasure requests and collecting what every service erased.

Reporting takes the requests (``POST /v1/privacy/erasures``, which ``keymoment privacy erase``
calls) because it holds no customer data of its own and serves no customer-facing page: the
request's contacts reach only an admin-token API, are turned into pseudonyms at once and
leave in ``erasure.requested.v1`` through the outbox, in the transaction that registers the
request. Every service applies it (reporting too, with nothing to erase) and reports back
(``erasure.applied.v1``); an erasure is done when every service of
:data:`shared.privacy.ERASING_SERVICES` has reported.

This module holds the register's SQL and use cases.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from shared.contracts import ErasureApplied, ErasureRequested
from shared.events import ERASURE_REQUESTED, Envelope
from shared.outbox import enqueue
from shared.privacy import ERASING_SERVICES, ContactKind, pseudonyms_of
from shared.privacy.erasure import Erasure


@dataclass(frozen=True)
class ServiceReport:
    applied_at: datetime
    erased: dict[str, int]


@dataclass(frozen=True)
class ErasureRecord:
    erasure_id: str
    contacts: dict[str, int]
    requested_by: str
    requested_at: datetime
    services: dict[str, ServiceReport] = field(default_factory=dict)

    @property
    def waiting_for(self) -> list[str]:
        return [s for s in ERASING_SERVICES if s not in self.services]

    @property
    def done(self) -> bool:
        return not self.waiting_for


async def request(
    conn: asyncpg.Connection, *, contacts: list[tuple[ContactKind, str]], key: bytes, requested_by: str,
    now: datetime, topic: str, source: str,
) -> ErasureRecord:
    """Register an erasure of the customer with these contacts and publish it (outbox, same
    transaction). The contacts themselves are not stored: only their pseudonyms leave."""
    subjects = pseudonyms_of(key, contacts)
    if not subjects:
        raise ValueError("an erasure names at least one contact")
    kinds: dict[str, int] = {}
    for kind, _ in contacts:
        kinds[kind] = kinds.get(kind, 0) + 1
    record = ErasureRecord(str(uuid.uuid4()), kinds, requested_by, now)
    await conn.execute(
        """INSERT INTO erasure_requests (erasure_id, contacts, requested_by, requested_at)
           VALUES ($1, $2::jsonb, $3, $4)""",
        record.erasure_id, json.dumps(kinds), requested_by, now,
    )
    event = ErasureRequested(erasure_id=record.erasure_id, subjects=subjects, requested_at=now)
    await enqueue(conn, [(topic, Envelope.new(ERASURE_REQUESTED, event, source=source,
                                              key=f"erasure:{record.erasure_id}", subject=record.erasure_id,
                                              id=record.erasure_id, time=now))])
    return record


async def record_report(conn: asyncpg.Connection, report: ErasureApplied) -> bool:
    """Keep one service's report (the first one: a report is never rewritten)."""
    return bool(await conn.fetchval(
        """INSERT INTO erasure_reports (erasure_id, service, erased, applied_at) VALUES ($1, $2, $3::jsonb, $4)
           ON CONFLICT (erasure_id, service) DO NOTHING RETURNING true""",
        report.erasure_id, report.service, json.dumps(report.erased), report.applied_at,
    ))


async def find(conn: asyncpg.Connection | asyncpg.Pool, erasure_id: str) -> ErasureRecord | None:
    row = await conn.fetchrow(
        "SELECT erasure_id, contacts, requested_by, requested_at FROM erasure_requests WHERE erasure_id = $1",
        erasure_id,
    )
    if row is None:
        return None
    reports = await conn.fetch(
        "SELECT service, erased, applied_at FROM erasure_reports WHERE erasure_id = $1 ORDER BY service", erasure_id)
    return ErasureRecord(
        erasure_id=row["erasure_id"], contacts=json.loads(row["contacts"]), requested_by=row["requested_by"],
        requested_at=row["requested_at"],
        services={r["service"]: ServiceReport(r["applied_at"], json.loads(r["erased"])) for r in reports},
    )


async def erase(conn: asyncpg.Connection, erasure: Erasure) -> None:
    """Reporting's own part: nothing. It keeps no customer data (feedback and alert facts carry
    no contact and no text), so it only reports that (and its outbox, checked like everyone's)."""
