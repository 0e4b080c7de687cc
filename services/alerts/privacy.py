"""What alerts keeps about customers, for how long, and how it is erased.

Alerts holds a customer's contacts (``alerts.customer``, for the recovery survey), their words
(feedback texts, the alert's summary, scorer cues, notification subjects and mails) and their
contact history (``customer_moments``), all keyed by pseudonyms (``customer_key``, ``subjects``).
Retention clears the contacts and words ``ALERTS_PERSONAL_DATA_DAYS`` after they were written and
keeps the alerts (the KPIs); the history goes after ``ALERTS_HISTORY_DAYS``, mail content after
``MAIL_CONTENT_DAYS`` (the mail queue's). An erasure does the same at once for
one customer (:func:`erase`), and feedback about them from before it that arrives later is
dropped (:func:`drop_erased`).
"""

from __future__ import annotations

import logging

import asyncpg

from services.alerts.repository import privacy as sql
from services.alerts.settings import AlertsSettings
from shared.contracts import Customer
from shared.db import in_batches
from shared.events import Envelope
from shared.privacy import ContactKind, pseudonym
from shared.privacy.erasure import Erasure, not_erased
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

_CONTACT_KINDS: tuple[ContactKind, ...] = ("id", "email", "phone")


def retain(runtime: ServiceRuntime, settings: AlertsSettings) -> None:
    """Register the retention of every alerts table holding personal data."""
    days = settings.alerts_personal_data_days
    runtime.retain("alerts", "updated_at", days, anonymise=sql.ALERT_CUSTOMER)
    runtime.retain("alert_feedback", "linked_at", days, anonymise=sql.FEEDBACK_WORDS)
    runtime.retain("alert_events", "at", days, anonymise=sql.PEOPLES_NOTES)
    runtime.retain("notifications", "created_at", days, anonymise=sql.NOTIFICATION_SUBJECT)
    runtime.retain("alert_verdicts", sql.VERDICT_FEEDBACK_LINKED, days)
    # A customer's "recent contacts" reach back ALERTS_HISTORY_DAYS; older moments are deleted.
    runtime.retain("customer_moments", "at", settings.alerts_history_days)


async def erase(conn: asyncpg.Connection, erasure: Erasure) -> None:
    """Anonymise everything alerts holds about the erased customer (found by any of their
    contacts, and then by the others those rows name)."""
    erasure.also(await sql.customer_subjects(conn, sorted(erasure.subjects)))
    for table, rows in (await sql.erase_customer(conn, sorted(erasure.subjects), now=erasure.applied_at)).items():
        erasure.count(table, rows)


async def drop_erased(conn: asyncpg.Connection, key: bytes, batch: list[Envelope]) -> list[Envelope]:
    """The batch without feedback of erased customers from before their erasure."""
    kept = await not_erased(conn, key, batch, customer=lambda e: e.data.customer,  # type: ignore[attr-defined]
                            at=lambda e: e.data.received_at)  # type: ignore[attr-defined]
    if len(kept) < len(batch):
        logger.info("feedback of erased customers dropped", extra={"dropped": len(batch) - len(kept)})
    return kept


async def pseudonymise_backlog(pool: asyncpg.Pool, key: bytes, *, batch: int = 500) -> dict[str, int]:
    """Key the rows written before the upgrade (migration 0100) by pseudonyms: alerts from their
    customer, moments from their plaintext key (``email:li@example.cn``), then feedback links from
    both. Run at start; replicas share the work."""

    async def alerts(conn: asyncpg.Connection) -> int:
        rows = await sql.alerts_to_pseudonymise(conn, limit=batch)
        updates = []
        for alert_id, customer in rows:
            subjects = Customer.model_validate_json(customer).pseudonyms(key) if customer else []
            updates.append((alert_id, subjects[0] if subjects else None, subjects))
        await sql.set_alert_subjects(conn, updates)
        return len(rows)

    async def moments(conn: asyncpg.Connection) -> int:
        rows = await sql.moments_to_pseudonymise(conn, limit=batch)
        await sql.rekey_moments(conn, [(old, feedback_id, _rekeyed(key, old)) for old, feedback_id in rows])
        return len(rows)

    async def links(conn: asyncpg.Connection) -> int:
        return await sql.subject_feedback_links(conn, limit=batch)

    done = {"alerts": await in_batches(pool, alerts), "customer_moments": await in_batches(pool, moments),
            "alert_feedback": await in_batches(pool, links)}
    if any(done.values()):
        logger.info("rows from before pseudonymous keys upgraded", extra=done)
    return done


def _rekeyed(key: bytes, old: str) -> str | None:
    """The pseudonym of a plaintext key ``<kind>:<contact>``."""
    kind, _, value = old.partition(":")
    if kind not in _CONTACT_KINDS or not value:
        return None
    return pseudonym(key, kind, value)  # type: ignore[arg-type]
