"""What the use cases of alerts depend on, as interfaces: the repository (reads and
whole-batch writes over one transaction) and the publisher. ``repository.AlertsRepository``
implements :class:`Repository` over an asyncpg connection; the unit tests implement it in
memory. Every time comes from the caller (its Clock), never from the store.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from services.alerts.domain import (Alert, AlertEvent, CustomerHistory, Delivery, FeedbackLink, ManagerToken,
                                   Moment, Notification, Verdict)
from services.alerts.silences import Silence, SilenceEvent
from services.alerts.emails import AlertMail
from shared.events import Envelope

Events = list[tuple[str, Envelope]]
"""``(topic, event)`` pairs."""

Publish = Callable[[Events], Awaitable[None]]
"""Publishes events and returns once Kafka acknowledged them all (the process's publisher)."""


@dataclass
class Writes:
    """The rows of a unit of work that :meth:`Store.write` writes together (a consumed batch's
    moments, alerts, their feedback, history, notifications, mails and outbox events)."""

    moments: list[Moment] = field(default_factory=list)
    new_alerts: list[Alert] = field(default_factory=list)
    changed_alerts: list[Alert] = field(default_factory=list)
    links: list[FeedbackLink] = field(default_factory=list)
    events: list[AlertEvent] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    mails: list[AlertMail] = field(default_factory=list)
    outbox: Events = field(default_factory=list)


class Store(Protocol):
    """What a unit of work reads before it writes, and its writes, inside the caller's
    transaction: :meth:`write` sends the rows of every table of the hot path in one statement;
    the admin records (silences, tokens, verdicts) one statement per table."""

    async def get_alert(self, alert_id: str, *, for_update: bool = False) -> Alert | None: ...

    async def lock_group_keys(self, keys: list[str]) -> None:
        """Serialise concurrent feedback that could group into one alert (until the transaction ends)."""

    async def open_alerts_for(
        self, *, customer_keys: list[str], places: list[tuple[str, str | None]], since: datetime
    ) -> list[Alert]:
        """Unresolved alerts of these customers, and those at these places with feedback since
        ``since``; locked, in alert id order."""

    async def due_alerts(self, *, now: datetime, limit: int) -> list[Alert]:
        """Alerts whose SLA timer expired, earliest first, locked (rows another transaction holds are skipped)."""

    async def linked_feedback(self, feedback_ids: list[str]) -> set[str]:
        """Which of these feedback are already linked to an alert."""

    async def alert_feedback(self, alert_id: str) -> list[FeedbackLink]:
        """The alert's feedback, oldest link first."""

    async def next_notification_seq(self, *, alert_id: str, kind: str, level: int) -> int: ...

    async def active_silences(self, *, now: datetime) -> list[Silence]: ...

    async def customer_histories(
        self, *, customer_keys: list[str], since: datetime, exclude: list[str]
    ) -> dict[str, CustomerHistory]:
        """Each customer's moments since ``since``, not counting the feedback in ``exclude`` (one read)."""

    async def get_silence(self, silence_id: str, *, for_update: bool = False) -> Silence | None: ...

    async def get_token(self, token_id: str, *, for_update: bool = False) -> ManagerToken | None: ...

    async def write(self, writes: Writes) -> int:
        """Write them all, in one round trip. Skipped: a new alert whose feedback already raised
        one, a feedback already linked (to any alert), a notification whose id or (alert, kind,
        level, seq) exists, a mail already queued (the others' bytes are written now; the sender
        is woken when the transaction commits), a (customer, feedback) moment already recorded.
        Stored alerts get their mutable state written; outbox events are published by the relay
        after the commit. Returns how many of ``new_alerts`` were inserted."""

    async def save_silences(self, silences: list[Silence]) -> None:
        """Insert new silences; for existing ones write their end and who expired them."""

    async def add_silence_events(self, events: list[SilenceEvent]) -> None: ...

    async def save_tokens(self, tokens: list[ManagerToken]) -> None:
        """Insert new tokens; for existing ones write their revocation (when and by whom)."""

    async def add_verdicts(self, verdicts: list[Verdict]) -> None:
        """Insert the verdicts; each replaces the current verdict of its feedback (kept, ``replaced_at`` set)."""


class Queries(Protocol):
    """The reads of the API and the email-link pages."""

    async def get_alert(self, alert_id: str, *, for_update: bool = False) -> Alert | None: ...

    async def list_alerts(
        self, *, status: list[str] | None, severity: list[int] | None, location: str | None, team: str | None,
        since: datetime | None, teams: list[str] | None, limit: int, before: datetime | None,
    ) -> list[Alert]:
        """Newest first; ``teams``: only alerts of these teams (None: every team's)."""

    async def alert_feedback(self, alert_id: str) -> list[FeedbackLink]: ...

    async def alert_events(self, alert_id: str) -> list[AlertEvent]:
        """Oldest first."""

    async def alert_notifications(self, alert_id: str) -> list[Notification]:
        """Oldest first."""

    async def notification_deliveries(self, notification_ids: list[str]) -> dict[str, list[Delivery]]:
        """The mails of each notification, as the mail queue has them (none for a suppressed one)."""

    async def notification_for_link(self, notification_id: str) -> Notification | None: ...

    async def list_silences(self, *, now: datetime, include_expired: bool) -> list[Silence]:
        """Newest first."""

    async def get_silence(self, silence_id: str, *, for_update: bool = False) -> Silence | None: ...

    async def silence_events(self, silence_id: str) -> list[SilenceEvent]:
        """The silence's audit trail, oldest first."""

    async def alert_verdicts(self, alert_id: str) -> list[Verdict]:
        """Managers' verdicts on the alert's feedback, replaced ones included, oldest first."""

    async def open_counts(self) -> dict[int, int]:
        """Unresolved alerts by severity."""


class Repository(Store, Queries, Protocol):
    """Everything alerts reads and writes."""
