"""Applying an erasure (``erasure.requested.v1``): the plumbing every service shares.

Each service that stores anything about customers has a handler
``on_erasure_requested(ctx, conn, event)`` that calls :func:`apply` with its own ``erase``
(what it stores and how it finds it: its SQL). :func:`apply` runs in the consumer's
transaction and

1. records the erasure (``erasures``): the same ``erasure_id`` again (a replay) does
   nothing more;
2. lets the service erase: rows deleted or anonymised, mail forgotten; a row found by one
   contact may name the customer's other contacts, which the erasure then matches too
   (:meth:`Erasure.also`);
3. deletes events about the customer still waiting in the service's outbox, or set aside in its
   outbox dead letters;
4. remembers the pseudonyms (``erased_subjects``) so that older events about the customer
   arriving later are dropped (:func:`not_erased`);
5. reports what it erased (``erasure.applied.v1``, through the outbox, in the same
   transaction).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

import asyncpg
import orjson

from shared.contracts import Customer, ErasureApplied, ErasureRequested
from shared.events import ERASURE_APPLIED, Envelope, event_source
from shared.outbox import enqueue
from shared.privacy import is_pseudonym, pseudonyms_of

logger = logging.getLogger(__name__)

# Namespace of the report ids: one report per (erasure, service), the same id if it is ever written again.
_REPORTS = uuid.UUID("3b0f6c1a-9d2e-5f47-8a61-2c4e7d9b0a13")


@dataclass
class Erasure:
    """One erasure as a service applies it: whom it matches, and what it erased so far."""

    erasure_id: str
    requested_at: datetime
    applied_at: datetime  # now, by the service's clock
    subjects: set[str]  # pseudonyms; grows as found rows name more of the customer's contacts
    key: bytes  # PRIVACY_HASH_KEY, to pseudonymise contacts found in rows
    erased: dict[str, int] = field(default_factory=dict)

    def also(self, subjects: Iterable[str | None]) -> None:
        """More of the customer's pseudonyms, found on rows the erasure matched."""
        self.subjects.update(s for s in subjects if s and is_pseudonym(s))

    def count(self, place: str, rows: int) -> None:
        """``rows`` deleted or anonymised in ``place`` (a table, or table.column)."""
        self.erased[place] = self.erased.get(place, 0) + rows

    def matches_customer(self, customer: object) -> bool:
        """Whether a customer object as events carry it (``{"id", "email", "phone", ...}``) is this one."""
        if not isinstance(customer, dict):
            return False
        found = pseudonyms_of(self.key, [(kind, customer.get(kind) if isinstance(customer.get(kind), str) else None)
                                         for kind in ("id", "email", "phone")])
        return not self.subjects.isdisjoint(found)


Erase = Callable[[asyncpg.Connection, Erasure], Awaitable[None]]


async def apply(
    conn: asyncpg.Connection, request: ErasureRequested, *, settings: Any, erase: Erase, now: datetime
) -> Erasure | None:
    """Apply ``request`` once in the caller's transaction (see the module docstring); the
    erasure as applied, or None when this service applied it before (nothing more is done).
    ``settings``: the service's, including :class:`~shared.privacy.PrivacySettings`."""
    key, service = settings.privacy_key(), settings.service_name
    report_topic = settings.topic(ERASURE_APPLIED.topic)
    first = await conn.fetchval(
        """INSERT INTO erasures (erasure_id, applied_at, erased) VALUES ($1, $2, '{}')
           ON CONFLICT (erasure_id) DO NOTHING RETURNING true""",
        request.erasure_id, now,
    )
    if not first:
        logger.info("erasure applied before; nothing more to do", extra={"erasure_id": request.erasure_id})
        return None
    erasure = Erasure(request.erasure_id, request.requested_at, now, set(request.subjects), key)
    await erase(conn, erasure)
    for table in ("outbox", "outbox_dead_letters"):  # waiting to be published, or set aside for a person
        erasure.count(table, await _forget_events(conn, erasure, table))
    await conn.execute(
        """INSERT INTO erased_subjects (subject, erasure_id, erased_at)
           SELECT s, $2, $3 FROM unnest($1::text[]) AS s
           ON CONFLICT (subject) DO UPDATE SET erasure_id = EXCLUDED.erasure_id,
               erased_at = greatest(erased_subjects.erased_at, EXCLUDED.erased_at)""",
        sorted(erasure.subjects), request.erasure_id, request.requested_at,
    )
    erased = {place: n for place, n in sorted(erasure.erased.items())}
    await conn.execute("UPDATE erasures SET erased = $2::jsonb WHERE erasure_id = $1", request.erasure_id,
                       orjson.dumps(erased).decode())
    report = ErasureApplied(erasure_id=request.erasure_id, service=service, erased=erased, applied_at=now)
    await enqueue(conn, [(report_topic, Envelope.new(
        ERASURE_APPLIED, report, source=event_source(service), key=f"erasure:{request.erasure_id}",
        subject=request.erasure_id, id=str(uuid.uuid5(_REPORTS, f"{request.erasure_id}/{service}")), time=now,
    ))])
    logger.info("erasure applied", extra={"erasure_id": request.erasure_id, "erased": erased})
    return erasure


async def _forget_events(conn: asyncpg.Connection, erasure: Erasure, table: str) -> int:
    """Delete the events about the customer still in this service's ``outbox`` (or set aside in
    ``outbox_dead_letters``): any event whose data names a ``customer``. An event the relay is
    publishing at this moment may still reach Kafka, like every earlier one: Kafka's copies expire
    with the topic's retention."""
    rows = await conn.fetch(
        f"""SELECT id, value FROM {table} WHERE position('"customer"'::bytea IN value) > 0 ORDER BY id FOR UPDATE"""
    )
    doomed = []
    for row in rows:
        try:
            data = orjson.loads(row["value"])
        except orjson.JSONDecodeError:
            continue
        if isinstance(data, dict) and erasure.matches_customer(data.get("customer")):
            doomed.append(row["id"])
    if doomed:
        await conn.execute(f"DELETE FROM {table} WHERE id = ANY($1::bigint[])", doomed)
    return len(doomed)


async def erased_since(conn: asyncpg.Connection, subjects: Iterable[str]) -> dict[str, datetime]:
    """Which of these pseudonyms belong to erased customers, with their erasure's time. An event
    about such a customer from before that time is covered by the erasure: drop it."""
    wanted = sorted(set(subjects))
    if not wanted:
        return {}
    rows = await conn.fetch("SELECT subject, erased_at FROM erased_subjects WHERE subject = ANY($1::text[])", wanted)
    return {r["subject"]: r["erased_at"] for r in rows}


def covered(erased: dict[str, datetime], subjects: Iterable[str], at: datetime) -> bool:
    """Whether an event about a customer with these pseudonyms, from ``at``, was erased already."""
    return any(s in erased and at <= erased[s] for s in subjects)


T = TypeVar("T")


async def not_erased(conn: asyncpg.Connection, key: bytes, items: Sequence[T], *,
                     customer: Callable[[T], Customer | None], at: Callable[[T], datetime]) -> list[T]:
    """``items`` without those about a customer erased since: an event from before an erasure
    that arrives late (a consumer behind, a dead letter replayed) must not bring the customer
    back. ``customer`` and ``at`` read an item's customer and the time it speaks of."""
    subjects = [c.pseudonyms(key) if (c := customer(item)) else [] for item in items]
    erased = await erased_since(conn, (s for found in subjects for s in found))
    if not erased:
        return list(items)
    return [item for item, found in zip(items, subjects, strict=True) if not covered(erased, found, at(item))]
