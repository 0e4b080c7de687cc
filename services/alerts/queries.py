"""What the API and the email-link pages read: alerts as the caller may see them, one alert with
its feedback, history and notifications, silences, and the notification behind a signed link."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.alerts.context import Actor
from services.alerts.domain import Alert, AlertEvent, AlertNotFound, FeedbackLink, Forbidden, Silence
from services.alerts.ports import Queries


@dataclass(frozen=True)
class AlertDetail:
    alert: Alert
    feedback: list[FeedbackLink]
    history: list[AlertEvent]
    notifications: list[dict[str, Any]]


async def list_alerts(repo: Queries, *, actor: Actor, status: list[str] | None, severity: list[int] | None,
                      location: str | None, team: str | None, since: datetime | None, before: datetime | None,
                      limit: int) -> list[Alert]:
    """Newest first; a manager sees the alerts of the teams they are on."""
    return await repo.list_alerts(status=status, severity=severity, location=location, team=team, since=since,
                                  recipient=None if actor.admin else actor.name, limit=limit, before=before)


async def alert_detail(repo: Queries, alert_id: str, *, actor: Actor) -> AlertDetail:
    alert = await repo.get_alert(alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    if not actor.may_act_on(alert):
        raise Forbidden("not on this alert's team")
    return AlertDetail(alert, await repo.alert_feedback(alert_id), await repo.alert_events(alert_id),
                       await repo.alert_notifications(alert_id))


async def list_silences(repo: Queries, *, now: datetime, include_expired: bool) -> list[Silence]:
    return await repo.list_silences(now=now, include_expired=include_expired)


async def link_target(repo: Queries, *, notification_id: str, alert_id: str) -> dict[str, Any] | None:
    """The notification a signed link names, if it exists and is about ``alert_id``."""
    notification = await repo.notification_for_link(notification_id)
    if notification is None or notification["alert_id"] != alert_id:
        return None
    return notification


async def get_alert(repo: Queries, alert_id: str) -> Alert | None:
    return await repo.get_alert(alert_id)
