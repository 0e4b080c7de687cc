"""Where the use cases of alerts write: at once, or held for a whole consumed batch.

A negative feedback that raises an alert writes five rows (alert, link, history step,
notification, outbox event) after four reads; one round trip to PostgreSQL each made
negative feedback the bulk of the consumer's time. :class:`BatchWrites` holds a batch's
writes and sends them as one statement per table at :meth:`BatchWrites.flush`, still inside
the batch's transaction, and answers the reads that must see what it holds (the feedback of
an alert raised earlier in the batch, the next notification number).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import asyncpg

from services.alerts import repository as repo
from services.alerts.domain import Alert
from shared.events import Envelope
from shared.errors import TransientError
from shared.outbox import enqueue


class Writes:
    """What a notification reads and writes, executed at once on ``conn`` (inside the caller's
    transaction)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def silences(self, now: datetime) -> list[dict[str, Any]]:
        return await repo.active_silences(self.conn, now=now)

    async def next_seq(self, alert_id: str, kind: str, level: int, *, new_alert: bool) -> int:
        """The number of the next notification of this kind and level for the alert."""
        if new_alert:
            return 0
        return await repo.next_notification_seq(self.conn, alert_id=alert_id, kind=kind, level=level)

    async def alert_feedback(self, alert_id: str) -> list[dict[str, Any]]:
        return await repo.alert_feedback(self.conn, alert_id)

    async def add_notification(self, **notification: Any) -> None:
        await repo.add_notification(self.conn, **notification)


class BatchWrites(Writes):
    """The writes of one batch, held until :meth:`flush` (call it before the transaction commits).

    New alerts are inserted at the flush with the state they have then, so feedback that joins
    an alert raised earlier in the same batch needs no update of its own.
    """

    def __init__(self, conn: asyncpg.Connection) -> None:
        super().__init__(conn)
        self._silences: list[dict[str, Any]] | None = None
        self._new: dict[str, Alert] = {}
        self._dirty: dict[str, Alert] = {}
        self._links: list[dict[str, Any]] = []
        self._links_of: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._events: list[dict[str, Any]] = []
        self._notifications: list[dict[str, Any]] = []
        self._seqs: dict[tuple[str, str, int], int] = {}
        self._outbox: list[tuple[str, Envelope]] = []

    async def silences(self, now: datetime) -> list[dict[str, Any]]:
        if self._silences is None:  # one read per batch (every use in a batch has the same ``now``)
            self._silences = await super().silences(now)
        return self._silences

    async def next_seq(self, alert_id: str, kind: str, level: int, *, new_alert: bool) -> int:
        key = (alert_id, kind, level)
        if key in self._seqs:
            self._seqs[key] += 1
        else:
            self._seqs[key] = await super().next_seq(alert_id, kind, level, new_alert=new_alert or alert_id in self._new)
        return self._seqs[key]

    async def alert_feedback(self, alert_id: str) -> list[dict[str, Any]]:
        stored = [] if alert_id in self._new else await super().alert_feedback(alert_id)
        return stored + self._links_of.get(alert_id, [])

    def insert_alert(self, alert: Alert) -> None:
        self._new[alert.alert_id] = alert  # inserted, and checked, at the flush

    def save_alert(self, alert: Alert) -> None:
        if alert.alert_id not in self._new:
            self._dirty[alert.alert_id] = alert

    def link_feedback(self, **link: Any) -> None:
        self._links.append(link)
        self._links_of[link["alert_id"]].append({k: v for k, v in link.items() if k != "alert_id"})

    def add_event(self, **event: Any) -> None:
        self._events.append(event)

    async def add_notification(self, **notification: Any) -> None:
        self._notifications.append(notification)

    def enqueue(self, events: list[tuple[str, Envelope]]) -> None:
        self._outbox.extend(events)

    async def flush(self) -> None:
        """Write everything held, one statement per table, in an order the foreign keys accept."""
        inserted = await repo.insert_alerts(self.conn, list(self._new.values()))
        if inserted != len(self._new):
            # Another consumer raised one of these alerts since this batch read (the same feedback
            # under two event ids at once). The batch rolls back; its events are retried one by one.
            raise TransientError(f"{len(self._new) - inserted} alert(s) of this batch were raised concurrently")
        await repo.save_alerts(self.conn, list(self._dirty.values()))
        await repo.link_feedback_many(self.conn, self._links)
        await repo.add_events(self.conn, self._events)
        await repo.add_notifications(self.conn, self._notifications)
        await enqueue(self.conn, self._outbox)
