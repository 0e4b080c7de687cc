"""The unit of work every use case of alerts reads through and writes through.

A negative feedback that raises an alert writes six kinds of rows (alert, link, history step,
notification, its recipients' mails, outbox event) after four reads; one round trip to PostgreSQL each made negative
feedback the bulk of the consumer's time. A :class:`UnitOfWork` holds a use case's writes (a
whole consumed batch's, or one API call's) and sends them at :meth:`UnitOfWork.flush` inside the
caller's transaction: every table of the hot path in one statement (a round trip costs more than
the rows on a loaded machine), the admin records one statement per table.
The reads that must see what it holds are answered from it: an alert changed or raised earlier
in the unit (an identity map: one object per alert), its feedback for an update mail, the next
notification number, the customer's moments of the batch, the feedback already linked.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from services.alerts.domain import (Alert, AlertEvent, CustomerHistory, FeedbackLink, ManagerToken, Moment,
                                   Notification, Verdict)
from services.alerts.silences import Silence, SilenceEvent
from services.alerts.emails import AlertMail
from services.alerts.ports import Events, Store, Writes
from shared.contracts import AlertStatus
from shared.errors import TransientError


class UnitOfWork:
    def __init__(self, repo: Store) -> None:
        self.repo = repo
        self._alerts: dict[str, Alert] = {}  # every alert locked or raised in this unit, as it is now
        self._new: dict[str, Alert] = {}
        self._dirty: dict[str, Alert] = {}
        self._links: list[FeedbackLink] = []
        self._links_of: defaultdict[str, list[FeedbackLink]] = defaultdict(list)
        self._events: list[AlertEvent] = []
        self._notifications: list[Notification] = []
        self._mails: list[AlertMail] = []
        self._seqs: dict[tuple[str, str, int], int] = {}
        self._moments: dict[tuple[str, str], Moment] = {}
        self._moments_of: defaultdict[str, list[Moment]] = defaultdict(list)  # by customer
        self._silences: tuple[datetime, list[Silence]] | None = None
        # (customer, since) -> the stored history, not counting any feedback held here
        self._histories: dict[tuple[str, datetime], CustomerHistory] = {}
        self._saved_silences: dict[str, Silence] = {}
        self._silence_events: list[SilenceEvent] = []
        self._saved_tokens: dict[str, ManagerToken] = {}
        self._verdicts: list[Verdict] = []
        self._outbox: Events = []
        self._flushed = False

    # ------------------------------------------------------------------------ reads
    def _known(self, alerts: Iterable[Alert]) -> list[Alert]:
        return [self._alerts.setdefault(a.alert_id, a) for a in alerts]

    async def alert(self, alert_id: str) -> Alert | None:
        """The alert, locked until the transaction ends (as this unit has it)."""
        if alert_id not in self._alerts:
            alert = await self.repo.get_alert(alert_id, for_update=True)
            if alert is None:
                return None
            self._alerts[alert_id] = alert
        return self._alerts[alert_id]

    async def lock_group_keys(self, keys: list[str]) -> None:
        await self.repo.lock_group_keys(keys)

    async def open_alerts_for(
        self, *, customer_keys: list[str], places: list[tuple[str, str | None]], since: datetime
    ) -> list[Alert]:
        """Unresolved alerts of these customers, and those at these places with feedback since
        ``since``, locked; in the state this unit has them (one reopened earlier in the unit
        included), in alert id order."""
        stored = self._known(await self.repo.open_alerts_for(customer_keys=customer_keys, places=places, since=since))
        customers, at = set(customer_keys), set(places)
        found = {a.alert_id: a for a in [*stored, *self._alerts.values()]
                 if a.status != AlertStatus.RESOLVED.value
                 and (a.customer_key in customers or ((a.location, a.touchpoint) in at and a.last_feedback_at >= since))}
        return [found[k] for k in sorted(found)]

    async def due_alerts(self, *, now: datetime, limit: int) -> list[Alert]:
        return self._known(await self.repo.due_alerts(now=now, limit=limit))

    async def linked_feedback(self, feedback_ids: list[str]) -> set[str]:
        held = {link.feedback_id for link in self._links}
        return await self.repo.linked_feedback(feedback_ids) | held.intersection(feedback_ids)

    async def alert_feedback(self, alert_id: str) -> list[FeedbackLink]:
        """The alert's feedback, oldest first, the links held here last."""
        stored = [] if alert_id in self._new else await self.repo.alert_feedback(alert_id)
        return stored + self._links_of.get(alert_id, [])

    async def next_seq(self, alert_id: str, kind: str, level: int) -> int:
        """The number of the next notification of this kind and level for the alert."""
        key = (alert_id, kind, level)
        if key in self._seqs:
            self._seqs[key] += 1
        elif alert_id in self._new:
            self._seqs[key] = 0
        else:
            self._seqs[key] = await self.repo.next_notification_seq(alert_id=alert_id, kind=kind, level=level)
        return self._seqs[key]

    async def silences(self, now: datetime) -> list[Silence]:
        """The silences active at ``now`` (read once per unit: its uses share one ``now``)."""
        if self._silences is None or self._silences[0] != now:
            self._silences = (now, await self.repo.active_silences(now=now))
        return self._silences[1]

    async def prefetch_histories(self, customer_keys: list[str], *, since: datetime) -> None:
        """Read these customers' stored histories since ``since`` at once (not counting the
        feedback held here), for the :meth:`customer_history` calls to come (a batch's alerts
        raised for them: one read, not one per alert)."""
        keys = [k for k in dict.fromkeys(customer_keys) if (k, since) not in self._histories]
        if keys:
            found = await self.repo.customer_histories(customer_keys=keys, since=since, exclude=self._held_ids())
            self._histories.update(((k, since), found.get(k, CustomerHistory())) for k in keys)

    def _held_ids(self) -> list[str]:
        return [feedback_id for _, feedback_id in self._moments]

    async def customer_history(self, *, customer_key: str, since: datetime, exclude: list[str]) -> CustomerHistory:
        """The customer's moments since ``since`` (not counting ``exclude``), those held here included."""
        held = [m for m in self._moments_of.get(customer_key, []) if m.at >= since and m.feedback_id not in exclude]
        stored = self._histories.get((customer_key, since))
        if stored is None or not {*exclude} <= {*self._held_ids()}:
            # Not prefetched, or excluding stored feedback too (an update mail: the alert's own feedback)
            found = await self.repo.customer_histories(
                customer_keys=[customer_key], since=since, exclude=[*exclude, *(m.feedback_id for m in held)]
            )
            stored = found.get(customer_key, CustomerHistory())
        lasts = [m for m in (stored.last, *held) if m is not None]
        worsts = [m for m in (stored.worst, *held) if m is not None]
        return CustomerHistory(
            last=max(lasts, key=lambda m: m.at) if lasts else None,
            worst=min(worsts, key=lambda m: (m.mot, -m.at.timestamp())) if worsts else None,
            count=stored.count + len(held),
        )

    async def silence(self, silence_id: str) -> Silence | None:
        """The silence, locked until the transaction ends."""
        return await self.repo.get_silence(silence_id, for_update=True)

    async def token(self, token_id: str) -> ManagerToken | None:
        """The manager token's record, locked until the transaction ends."""
        return await self.repo.get_token(token_id, for_update=True)

    # ------------------------------------------------------------------------ held writes
    def _writable(self) -> None:
        if self._flushed:
            raise RuntimeError("this unit of work was flushed already")

    def add_alert(self, alert: Alert) -> None:
        """A new alert: inserted, with the state it has then, at the flush."""
        self._writable()
        self._new[alert.alert_id] = self._alerts[alert.alert_id] = alert

    def save_alert(self, alert: Alert) -> None:
        """A stored alert changed (its row lock held): its state is written at the flush."""
        self._writable()
        if alert.alert_id not in self._new:
            self._dirty[alert.alert_id] = self._alerts[alert.alert_id] = alert

    def link_feedback(self, link: FeedbackLink) -> None:
        self._writable()
        self._links.append(link)
        self._links_of[link.alert_id].append(link)

    def add_event(self, event: AlertEvent) -> None:
        self._writable()
        self._events.append(event)

    def add_notification(self, notification: Notification) -> None:
        self._writable()
        self._notifications.append(notification)

    def add_mail(self, mail: AlertMail) -> None:
        """One recipient's mail of a notification held here: queued (its bytes written) at the flush."""
        self._writable()
        self._mails.append(mail)

    def add_moments(self, moments: Iterable[Moment]) -> None:
        self._writable()
        self._histories.clear()  # read without the moments held now
        for m in moments:
            if (m.customer_key, m.feedback_id) not in self._moments:
                self._moments[m.customer_key, m.feedback_id] = m
                self._moments_of[m.customer_key].append(m)

    def save_silence(self, silence: Silence) -> None:
        self._writable()
        self._saved_silences[silence.silence_id] = silence

    def add_silence_event(self, event: SilenceEvent) -> None:
        self._writable()
        self._silence_events.append(event)

    def save_token(self, token: ManagerToken) -> None:
        self._writable()
        self._saved_tokens[token.token_id] = token

    def add_verdict(self, verdict: Verdict) -> None:
        """A manager's verdict: it replaces the current one of its feedback at the flush."""
        self._writable()
        self._verdicts.append(verdict)

    def enqueue(self, events: Events) -> None:
        """Events for the outbox, published by the relay once the transaction committed."""
        self._writable()
        self._outbox.extend(events)

    async def flush(self) -> None:
        """Write everything held (call once, before the transaction commits): the hot path's
        rows in one statement (:meth:`Store.write`), then the admin records, one statement per table."""
        self._writable()
        self._flushed = True
        repo = self.repo
        inserted = await repo.write(Writes(
            moments=list(self._moments.values()), new_alerts=list(self._new.values()),
            changed_alerts=list(self._dirty.values()), links=self._links, events=self._events,
            notifications=self._notifications, mails=self._mails, outbox=self._outbox,
        ))
        if inserted != len(self._new):
            # Another consumer raised one of these alerts since this unit read (the same feedback
            # under two event ids at once). The batch rolls back; its events are retried one by one.
            raise TransientError(f"{len(self._new) - inserted} alert(s) of this batch were raised concurrently")
        await repo.save_silences(list(self._saved_silences.values()))
        await repo.add_silence_events(self._silence_events)
        await repo.save_tokens(list(self._saved_tokens.values()))
        await repo.add_verdicts(self._verdicts)
