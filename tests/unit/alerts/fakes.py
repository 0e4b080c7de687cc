"""Fakes for the use cases of alerts: :class:`InMemoryRepository` implements
``services.alerts.ports.Repository`` as the SQL does (copies in and out like rows, ON CONFLICT
skips, foreign keys, UPDATE of the mutable columns only, the orderings and locks), and
:class:`FakePublisher` records what was published and when Kafka "acknowledged" it; both write
to one journal, so a test can see what happened in which order."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from services.alerts.domain import (Alert, AlertEvent, CustomerHistory, Delivery, FeedbackLink, ManagerToken,
                                   Moment, Notification, Verdict)
from services.alerts.silences import Silence, SilenceEvent
from services.alerts.emails import AlertMail
from services.alerts.ports import Events, Writes
from shared.contracts import AlertStatus

# The columns an UPDATE of an alert writes (the repository's ``_MUTABLE``); the rest never change.
MUTABLE = (
    "severity", "status", "sla_due_at", "escalation_level", "sla_breached", "acknowledged_at", "acknowledged_by",
    "resolved_at", "resolved_by", "reopen_count", "feedback_count", "last_feedback_at", "last_notified_at",
    "updated_at", "state_version",
)


async def _round_trip() -> None:
    """Every call to the database suspends its caller: other tasks (the publisher) run meanwhile."""
    await asyncio.sleep(0)


class IntegrityError(Exception):
    """What PostgreSQL would answer with a constraint violation."""


class InMemoryRepository:
    def __init__(self, journal: list[str] | None = None) -> None:
        self.journal = journal if journal is not None else []
        self.alerts: dict[str, Alert] = {}
        self.links: dict[str, FeedbackLink] = {}
        self.events: list[AlertEvent] = []
        self.notifications: dict[str, Notification] = {}
        self.mails: dict[str, tuple[AlertMail, bytes]] = {}  # the mail queue: each mail with its bytes
        self.moments: dict[tuple[str, str], Moment] = {}
        self.silences: dict[str, Silence] = {}
        self.silence_trail: list[SilenceEvent] = []
        self.tokens: dict[str, ManagerToken] = {}
        self.verdicts: list[Verdict] = []
        self.outbox: Events = []
        self.history_reads = 0
        self.locked: set[str] = set()  # alert ids locked in the current transaction
        self.group_locks: list[list[str]] = []
        # Inserted and committed by "another consumer" just before this one's next insert of alerts.
        self.raised_elsewhere: list[Alert] = []

    # ------------------------------------------------------------------------ transactions
    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """Everything written inside is undone if the block raises (like a rolled-back transaction)."""
        state = copy.deepcopy({k: v for k, v in vars(self).items() if k != "journal"})
        try:
            yield
        except BaseException:
            elsewhere = [self.alerts[a.alert_id] for a in state["raised_elsewhere"] if a.alert_id in self.alerts]
            vars(self).update(state)
            self.raised_elsewhere = []
            self.alerts.update((a.alert_id, a) for a in elsewhere)  # another transaction's commit stays
            raise
        finally:
            self.locked = set()

    def _write(self, table: str, rows: list[Any]) -> bool:
        if rows:
            self.journal.append(f"write {table}")
        return bool(rows)

    # ------------------------------------------------------------------------ alerts
    async def get_alert(self, alert_id: str, *, for_update: bool = False) -> Alert | None:
        await _round_trip()
        if alert_id not in self.alerts:
            return None
        if for_update:
            self.locked.add(alert_id)
        return copy.deepcopy(self.alerts[alert_id])

    async def lock_group_keys(self, keys: list[str]) -> None:
        await _round_trip()
        if keys:
            self.group_locks.append(sorted(set(keys)))

    async def open_alerts_for(
        self, *, customer_keys: list[str], places: list[tuple[str, str | None]], since: datetime
    ) -> list[Alert]:
        await _round_trip()
        found = [a for a in self.alerts.values() if a.status != AlertStatus.RESOLVED.value and (
            a.customer_key in customer_keys
            or ((a.location, a.touchpoint) in places and a.last_feedback_at >= since))]
        self.locked.update(a.alert_id for a in found)
        return [copy.deepcopy(a) for a in sorted(found, key=lambda a: a.alert_id)]

    async def due_alerts(self, *, now: datetime, limit: int) -> list[Alert]:
        await _round_trip()
        due = sorted((a for a in self.alerts.values() if a.sla_due_at is not None and a.sla_due_at <= now),
                     key=lambda a: a.sla_due_at)[:limit]
        self.locked.update(a.alert_id for a in due)
        return [copy.deepcopy(a) for a in due]

    async def write(self, writes: Writes) -> int:
        """One statement in the real repository: here each table in turn, parents first (the
        real one checks the foreign keys when its statement ends)."""
        await self.add_moments(writes.moments)
        inserted = await self.insert_alerts(writes.new_alerts)
        await self.save_alerts(writes.changed_alerts)
        await self.link_feedback(writes.links)
        await self.add_events(writes.events)
        await self.add_notifications(writes.notifications)
        await self.add_mails(writes.mails)
        await self.enqueue(writes.outbox)
        return inserted

    async def insert_alerts(self, alerts: list[Alert]) -> int:
        await _round_trip()
        for other in self.raised_elsewhere:
            self.alerts[other.alert_id] = copy.deepcopy(other)
        self.raised_elsewhere = []
        if not self._write("alerts", alerts):
            return 0
        taken = {a.feedback_id for a in self.alerts.values()}
        new = 0
        for alert in alerts:
            if alert.feedback_id in taken:
                continue  # ON CONFLICT (feedback_id) DO NOTHING
            if alert.alert_id in self.alerts:
                raise IntegrityError(f"duplicate key alerts_pkey ({alert.alert_id})")
            self.alerts[alert.alert_id] = copy.deepcopy(alert)
            taken.add(alert.feedback_id)
            new += 1
        return new

    async def save_alerts(self, alerts: list[Alert]) -> None:
        await _round_trip()
        if self._write("alerts (update)", alerts):
            for alert in alerts:
                stored = self.alerts.get(alert.alert_id)
                if stored is not None:  # an UPDATE of a missing row changes nothing
                    for column in MUTABLE:
                        setattr(stored, column, copy.deepcopy(getattr(alert, column)))

    async def list_alerts(
        self, *, status: list[str] | None, severity: list[int] | None, location: str | None, team: str | None,
        since: datetime | None, teams: list[str] | None, limit: int, before: datetime | None,
    ) -> list[Alert]:
        await _round_trip()
        found = [a for a in self.alerts.values()
                 if (status is None or a.status in status) and (severity is None or a.severity in severity)
                 and (location is None or a.location == location) and (team is None or a.team == team)
                 and (since is None or a.raised_at >= since) and (teams is None or a.team in teams)
                 and (before is None or a.raised_at < before)]
        return [copy.deepcopy(a) for a in sorted(found, key=lambda a: a.raised_at, reverse=True)[:limit]]

    async def open_counts(self) -> dict[int, int]:
        await _round_trip()
        counts: dict[int, int] = {}
        for a in self.alerts.values():
            if a.status != AlertStatus.RESOLVED.value:
                counts[a.severity] = counts.get(a.severity, 0) + 1
        return counts

    def _references(self, table: str, alert_id: str) -> None:
        if alert_id not in self.alerts:
            raise IntegrityError(f"{table}.alert_id {alert_id} is not in alerts")

    # ------------------------------------------------------------------------ feedback, history, customers
    async def linked_feedback(self, feedback_ids: list[str]) -> set[str]:
        await _round_trip()
        return {f for f in feedback_ids if f in self.links}

    async def alert_feedback(self, alert_id: str) -> list[FeedbackLink]:
        await _round_trip()
        links = [link for link in self.links.values() if link.alert_id == alert_id]
        return [copy.deepcopy(link) for link in sorted(links, key=lambda link: (link.linked_at, link.feedback_id))]

    async def link_feedback(self, links: list[FeedbackLink]) -> None:
        await _round_trip()
        if self._write("alert_feedback", links):
            for link in links:
                self._references("alert_feedback", link.alert_id)
                self.links.setdefault(link.feedback_id, copy.deepcopy(link))

    async def add_events(self, events: list[AlertEvent]) -> None:
        await _round_trip()
        if self._write("alert_events", events):
            for event in events:
                self._references("alert_events", event.alert_id)
                self.events.append(copy.deepcopy(event))

    async def alert_events(self, alert_id: str) -> list[AlertEvent]:
        await _round_trip()
        return [copy.deepcopy(e) for e in self.events if e.alert_id == alert_id]

    async def customer_histories(
        self, *, customer_keys: list[str], since: datetime, exclude: list[str]
    ) -> dict[str, CustomerHistory]:
        await _round_trip()
        self.history_reads += 1
        found = {}
        for key in customer_keys:
            moments = [m for m in self.moments.values()
                       if m.customer_key == key and m.at >= since and m.feedback_id not in exclude]
            found[key] = CustomerHistory() if not moments else CustomerHistory(
                last=max(moments, key=lambda m: m.at), worst=min(moments, key=lambda m: (m.mot, -m.at.timestamp())),
                count=len(moments))
        return found

    async def add_moments(self, moments: list[Moment]) -> None:
        await _round_trip()
        if self._write("customer_moments", moments):
            for m in moments:
                self.moments.setdefault((m.customer_key, m.feedback_id), m)

    async def enqueue(self, events: Events) -> None:
        await _round_trip()
        if self._write("outbox", events):
            self.outbox.extend(events)

    # ------------------------------------------------------------------------ notifications and their mails
    async def add_notifications(self, notifications: list[Notification]) -> None:
        await _round_trip()
        if self._write("notifications", notifications):
            for n in notifications:
                self._references("notifications", n.alert_id)
                if any(n.notification_id == o.notification_id
                       or (n.alert_id, n.kind, n.level, n.seq) == (o.alert_id, o.kind, o.level, o.seq)
                       for o in self.notifications.values()):
                    continue  # ON CONFLICT DO NOTHING
                self.notifications[n.notification_id] = copy.deepcopy(n)

    async def add_mails(self, mails: list[AlertMail]) -> None:
        await _round_trip()
        if self._write("mail_queue", mails):
            for m in mails:
                self.mails.setdefault(m.mail_id, (m, m.message()))  # the bytes written now, as the SQL does

    async def next_notification_seq(self, *, alert_id: str, kind: str, level: int) -> int:
        await _round_trip()
        seqs = [n.seq for n in self.notifications.values() if (n.alert_id, n.kind, n.level) == (alert_id, kind, level)]
        return max(seqs) + 1 if seqs else 0

    async def alert_notifications(self, alert_id: str) -> list[Notification]:
        await _round_trip()
        rows = sorted((n for n in self.notifications.values() if n.alert_id == alert_id),
                      key=lambda n: (n.created_at, n.level, n.seq))
        return [copy.deepcopy(n) for n in rows]

    async def notification_deliveries(self, notification_ids: list[str]) -> dict[str, list[Delivery]]:
        await _round_trip()
        found: dict[str, list[Delivery]] = {}
        for mail, _ in self.mails.values():  # nothing sends here: every mail is pending
            if mail.notification_id in notification_ids:
                found.setdefault(mail.notification_id, []).append(Delivery(
                    recipients=(mail.recipient,), state="pending", attempts=0, message_id=mail.message_id,
                    last_error=None, next_attempt_at=mail.date, sent_at=None, refused={}))
        return found

    async def notification_for_link(self, notification_id: str) -> Notification | None:
        await _round_trip()
        return copy.deepcopy(self.notifications.get(notification_id))

    def mails_of(self, notification_id: str) -> list[AlertMail]:
        return [m for m, _ in self.mails.values() if m.notification_id == notification_id]

    # ------------------------------------------------------------------------ silences and manager tokens
    async def active_silences(self, *, now: datetime) -> list[Silence]:
        await _round_trip()
        active = [s for s in self.silences.values() if s.starts_at <= now < s.ends_at]
        return [copy.deepcopy(s) for s in sorted(active, key=lambda s: s.created_at)]

    async def list_silences(self, *, now: datetime, include_expired: bool) -> list[Silence]:
        await _round_trip()
        listed = [s for s in self.silences.values() if include_expired or s.ends_at > now]
        return [copy.deepcopy(s) for s in sorted(listed, key=lambda s: s.created_at, reverse=True)[:500]]

    async def get_silence(self, silence_id: str, *, for_update: bool = False) -> Silence | None:
        await _round_trip()
        return copy.deepcopy(self.silences.get(silence_id))

    async def save_silences(self, silences: list[Silence]) -> None:
        await _round_trip()
        if self._write("silences", silences):
            for s in silences:
                if s.ends_at <= s.starts_at:
                    raise IntegrityError("silences: CHECK (ends_at > starts_at)")
                stored = self.silences.get(s.silence_id)
                if stored is None:
                    self.silences[s.silence_id] = copy.deepcopy(s)
                else:  # ON CONFLICT (silence_id) DO UPDATE SET ends_at, expired_by
                    stored.ends_at, stored.expired_by = s.ends_at, s.expired_by

    async def add_silence_events(self, events: list[SilenceEvent]) -> None:
        await _round_trip()
        if self._write("silence_events", events):
            for e in events:
                if e.silence_id not in self.silences:
                    raise IntegrityError(f"silence_events.silence_id {e.silence_id} is not in silences")
                self.silence_trail.append(copy.deepcopy(e))

    async def silence_events(self, silence_id: str) -> list[SilenceEvent]:
        await _round_trip()
        return [copy.deepcopy(e) for e in self.silence_trail if e.silence_id == silence_id]

    async def get_token(self, token_id: str, *, for_update: bool = False) -> ManagerToken | None:
        await _round_trip()
        return copy.deepcopy(self.tokens.get(token_id))

    async def save_tokens(self, tokens: list[ManagerToken]) -> None:
        await _round_trip()
        if self._write("manager_tokens", tokens):
            for t in tokens:
                stored = self.tokens.get(t.token_id)
                if stored is None:
                    self.tokens[t.token_id] = copy.deepcopy(t)
                else:  # ON CONFLICT (token_id) DO UPDATE SET revoked_at, revoked_by
                    stored.revoked_at, stored.revoked_by = t.revoked_at, t.revoked_by


    # ------------------------------------------------------------------------ verdicts
    async def add_verdicts(self, verdicts: list[Verdict]) -> None:
        await _round_trip()
        if self._write("alert_verdicts", verdicts):
            for v in verdicts:
                self._references("alert_verdicts", v.alert_id)
                if v.feedback_id not in self.links:
                    raise IntegrityError(f"alert_verdicts.feedback_id {v.feedback_id} is not in alert_feedback")
                for old in self.verdicts:  # UPDATE ... SET replaced_at WHERE the feedback's current one
                    if old.feedback_id == v.feedback_id and old.replaced_at is None:
                        old.replaced_at = v.decided_at
                self.verdicts.append(copy.deepcopy(v))

    async def alert_verdicts(self, alert_id: str) -> list[Verdict]:
        await _round_trip()
        found = sorted((v for v in self.verdicts if v.alert_id == alert_id), key=lambda v: (v.decided_at, v.verdict_id))
        return [copy.deepcopy(v) for v in found]


class FakePublisher:
    """Records published batches; Kafka's acknowledgement comes after ``ack_delay`` seconds,
    or an error when ``fail_with`` is set."""

    def __init__(self, journal: list[str] | None = None, *, ack_delay: float = 0.0) -> None:
        self.journal = journal if journal is not None else []
        self.ack_delay = ack_delay
        self.fail_with: Exception | None = None
        self.published: Events = []

    async def publish(self, events: Events) -> None:
        await _round_trip()
        self.journal.append("publish")
        await asyncio.sleep(self.ack_delay)
        if self.fail_with is not None:
            raise self.fail_with
        self.published.extend(events)
        self.journal.append("acknowledged")
