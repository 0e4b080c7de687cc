"""What the API and the email-link pages read: alerts as the caller may see them, one alert with
its feedback, history, notifications (with their mails' delivery) and managers' verdicts, silences
with their audit trail, and the notification behind a signed link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.alerts.context import Actor
from services.alerts.domain import (Alert, AlertEvent, AlertNotFound, Delivery, FeedbackLink, Forbidden,
                                   Notification, Verdict, delivery_state)
from services.alerts.silences import Silence, SilenceEvent
from services.alerts.ports import Queries


@dataclass(frozen=True)
class NotificationView:
    notification: Notification
    state: str  # suppressed, or its mails' (domain.delivery_state)
    deliveries: list[Delivery]


@dataclass(frozen=True)
class AlertDetail:
    alert: Alert
    feedback: list[FeedbackLink]
    history: list[AlertEvent]
    notifications: list[NotificationView]
    verdicts: list[Verdict]  # replaced ones included, oldest first


async def list_alerts(repo: Queries, *, actor: Actor, status: list[str] | None, severity: list[int] | None,
                      location: str | None, team: str | None, since: datetime | None, before: datetime | None,
                      limit: int) -> list[Alert]:
    """Newest first; a manager sees the alerts of their teams."""
    return await repo.list_alerts(status=status, severity=severity, location=location, team=team, since=since,
                                  teams=None if actor.admin else sorted(actor.teams), limit=limit, before=before)


async def alert_detail(repo: Queries, alert_id: str, *, actor: Actor) -> AlertDetail:
    alert = await repo.get_alert(alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    if not actor.may_act_on(alert):
        raise Forbidden("not an alert of your teams")
    notifications = await repo.alert_notifications(alert_id)
    deliveries = await repo.notification_deliveries([n.notification_id for n in notifications])
    views = [NotificationView(n, delivery_state(n, deliveries.get(n.notification_id, [])),
                              deliveries.get(n.notification_id, [])) for n in notifications]
    return AlertDetail(alert, await repo.alert_feedback(alert_id), await repo.alert_events(alert_id), views,
                       await repo.alert_verdicts(alert_id))


async def list_silences(repo: Queries, *, actor: Actor, now: datetime, include_expired: bool) -> list[Silence]:
    """Newest first; a manager sees the silences that may mute their teams' alerts."""
    silences = await repo.list_silences(now=now, include_expired=include_expired)
    if actor.admin:
        return silences
    return [s for s in silences if any(s.applies_to_team(team) for team in actor.teams)]


async def silence_detail(repo: Queries, silence_id: str, *, actor: Actor) -> tuple[Silence, list[SilenceEvent]] | None:
    """A silence and its audit trail; None if there is none the caller may see."""
    silence = await repo.get_silence(silence_id)
    if silence is None or not (actor.admin or any(silence.applies_to_team(t) for t in actor.teams)):
        return None
    return silence, await repo.silence_events(silence_id)


async def link_target(repo: Queries, *, notification_id: str, alert_id: str, recipient: str) -> Notification | None:
    """The notification a signed link names, if it exists, is about ``alert_id`` and went to ``recipient``."""
    notification = await repo.notification_for_link(notification_id)
    if notification is None or notification.alert_id != alert_id or recipient not in notification.recipients:
        return None
    return notification


async def get_alert(repo: Queries, alert_id: str) -> Alert | None:
    return await repo.get_alert(alert_id)


async def linked_feedback(repo: Queries, alert_id: str, feedback_id: str) -> FeedbackLink | None:
    """The feedback of the alert a verdict link judges, if the alert holds it."""
    return next((f for f in await repo.alert_feedback(alert_id) if f.feedback_id == feedback_id), None)
