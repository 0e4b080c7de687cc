"""Deciding and rendering a notification: who hears of an alert at an escalation level,
whether a silence mutes it, and one mail per recipient with links in that recipient's name.
The notification and its mails are held by the unit of work; the mails' bytes are written
at its flush and queued on the shared mail queue, whose sender mails them after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from services.alerts import domain, emails
from services.alerts.context import Context, derived_id
from services.alerts.domain import Alert, Notification
from services.alerts.links import ActionLink
from services.alerts.unit_of_work import UnitOfWork
from services.alerts.verdicts import VERDICT_LABELS, newest_judgeable
from shared.contracts import AlertStatus

logger = logging.getLogger(__name__)


async def silence_for(uow: UnitOfWork, alert: Alert, now: datetime, *, level: int = 1) -> str | None:
    """The id of the first active silence muting the alert's notification to ``level``, if any."""
    for silence in await uow.silences(now):
        if silence.mutes(alert, level=level):
            return silence.silence_id
    return None


def action_links(ctx: Context, alert: Alert, *, notification_id: str, recipient: str,
                 now: datetime) -> list[emails.Link]:
    """The actions open to ``recipient`` on the alert as it is now (acknowledge, the next step,
    resolve), signed for this state of it."""
    url = _signing(ctx, alert, notification_id=notification_id, recipient=recipient, now=now)
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


def verdict_links(ctx: Context, alert: Alert, *, notification_id: str, recipient: str, feedback_id: str,
                  now: datetime) -> list[emails.Link]:
    """``recipient``'s verdicts on a feedback of the alert (correct, false alarm): whatever state
    the alert is in, a verdict changes none."""
    url = _signing(ctx, alert, notification_id=notification_id, recipient=recipient, now=now)
    return [emails.Link(zh, en, url(verdict, feedback_id)) for verdict, (zh, en) in VERDICT_LABELS.items()]


def _signing(ctx: Context, alert: Alert, *, notification_id: str, recipient: str,
             now: datetime) -> Callable[..., str]:
    """The URL of a link of ``recipient``'s for the alert as it is now."""
    expires = now + timedelta(seconds=ctx.settings.alerts_link_ttl_seconds)
    base = ctx.settings.public_base_url.rstrip("/")

    def url(action: str, feedback_id: str | None = None) -> str:
        link = ActionLink(notification_id, alert.alert_id, recipient, action, alert.state_version, feedback_id)
        return f"{base}/l/{link.sign(ctx.signer, expires_at=expires)}"

    return url


def history_since(ctx: Context, now: datetime) -> datetime:
    """The start of the customer history an alert mail shows."""
    return now - timedelta(days=ctx.settings.alerts_history_days)


async def notify(uow: UnitOfWork, ctx: Context, alert: Alert, *, kind: str, level: int,
                 now: datetime) -> str | None:
    """Hold one notification of ``alert`` to escalation ``level`` and, unless a silence mutes
    it (then it is stored, not mailed), one mail per recipient, rendered now (its feedback and
    the customer's history as this unit has them). Returns its id, or None when the level has
    nobody."""
    team = ctx.router.team(alert.team)
    recipients = team.recipients(level) if team else []
    if not recipients:
        return None
    seq = await uow.next_seq(alert.alert_id, kind, level)
    notification_id = derived_id(alert.alert_id, kind, level, seq)
    silence_id = await silence_for(uow, alert, now, level=level)
    notification = Notification(
        notification_id=notification_id, alert_id=alert.alert_id, kind=kind, level=level, seq=seq,
        recipients=recipients, subject=emails.subject(kind, alert), silence_id=silence_id, created_at=now,
    )
    uow.add_notification(notification)
    if silence_id:
        ctx.metrics.silenced.inc()
        return notification_id
    feedback = await uow.alert_feedback(alert.alert_id)
    history = domain.CustomerHistory()
    if alert.customer_key:
        history = await uow.customer_history(
            customer_key=alert.customer_key, since=history_since(ctx, now), exclude=[f.feedback_id for f in feedback],
        )
    sender = ctx.settings.smtp_from
    judged = newest_judgeable(feedback)
    for recipient in recipients:
        verdicts = [] if judged is None else verdict_links(
            ctx, alert, notification_id=notification_id, recipient=recipient, feedback_id=judged.feedback_id, now=now)
        mail = emails.render(kind=kind, alert=alert, feedback=feedback, history=history, level=level,
                             links=action_links(ctx, alert, notification_id=notification_id, recipient=recipient,
                                                now=now), verdicts=verdicts)
        uow.add_mail(emails.AlertMail(
            mail_id=emails.mail_id(notification_id, recipient), notification_id=notification_id,
            alert_id=alert.alert_id, message_id=emails.message_id(notification_id, recipient, sender=sender),
            recipient=recipient, sender=sender, subject=mail.subject, text=mail.text, html=mail.html, date=now,
        ))
    alert.last_notified_at = now
    return notification_id
