"""Deciding and rendering a notification: who hears of an alert at an escalation level,
whether a silence mutes it, and the mail with its signed links. The row is held by the unit of
work; the sender mails it after the commit."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from services.alerts import domain, emails
from services.alerts.context import Context, derived_id
from services.alerts.domain import Alert, Notification
from services.alerts.links import LINK
from services.alerts.unit_of_work import UnitOfWork
from shared.contracts import AlertStatus

logger = logging.getLogger(__name__)


async def silence_for(uow: UnitOfWork, alert: Alert, now: datetime) -> str | None:
    """The id of the first active silence matching the alert, if any."""
    for silence in await uow.silences(now):
        if silence.matches(alert):
            return silence.silence_id
    return None


def _links(ctx: Context, alert: Alert, notification_id: str, now: datetime) -> list[emails.Link]:
    expires = now + timedelta(seconds=ctx.settings.alerts_link_ttl_seconds)
    base = ctx.settings.public_base_url.rstrip("/")

    def url(action: str) -> str:
        token = ctx.signer.sign(LINK, {"n": notification_id, "a": alert.alert_id, "do": action}, expires_at=expires)
        return f"{base}/l/{token}"

    links: list[emails.Link] = []
    if alert.status in domain.UNACKNOWLEDGED:
        links.append(emails.Link("确认收到", "Acknowledge", url("ack")))
    step = alert.next_step
    if step:
        zh, en = domain.STEP_TEXT[step]
        links.append(emails.Link(zh.split("：")[0], en.split(":")[0], url(step)))
    if alert.status != AlertStatus.RESOLVED.value:
        links.append(emails.Link("已解决", "Resolve", url("resolve")))
    return links


async def notify(uow: UnitOfWork, ctx: Context, alert: Alert, *, kind: str, level: int,
                 now: datetime) -> str | None:
    """Hold one notification of ``alert`` to escalation ``level``, rendered now (its feedback and
    the customer's history as this unit has them). A matching silence stores it as
    ``suppressed``. Returns its id, or None when the level has nobody."""
    team = ctx.router.team(alert.team)
    recipients = team.recipients(level) if team else []
    if not recipients:
        return None
    seq = await uow.next_seq(alert.alert_id, kind, level)
    notification_id = derived_id(alert.alert_id, kind, level, seq)
    silence_id = await silence_for(uow, alert, now)
    feedback = await uow.alert_feedback(alert.alert_id)
    history = domain.CustomerHistory()
    if alert.customer_key:
        history = await uow.customer_history(
            customer_key=alert.customer_key, since=now - timedelta(days=ctx.settings.alerts_history_days),
            exclude=[f.feedback_id for f in feedback],
        )
    mail = emails.render(kind=kind, alert=alert, feedback=feedback, history=history,
                         links=_links(ctx, alert, notification_id, now), level=level)
    uow.add_notification(Notification(
        notification_id=notification_id, alert_id=alert.alert_id, kind=kind, level=level, seq=seq,
        recipients=recipients, subject=mail.subject, body_text=mail.text, body_html=mail.html,
        message_id=emails.message_id(notification_id), status="suppressed" if silence_id else "pending",
        silence_id=silence_id, created_at=now,
    ))
    if silence_id:
        ctx.metrics.silenced.inc()
    else:
        alert.last_notified_at = now
    return notification_id
