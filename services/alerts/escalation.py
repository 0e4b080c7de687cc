"""SLA escalation: an alert nobody acknowledged in time is mailed to its team's next escalation
level, its breach recorded, and its timer re-armed while further levels exist.

Timers are columns (``alerts.sla_due_at``), so they survive restarts; due alerts are taken
locked, skipping rows another transaction holds, so replicas never escalate one alert twice.
"""

from __future__ import annotations

import logging

from services.alerts.context import Context, derived_id, history_step, updated_event
from services.alerts.notify import notify
from services.alerts.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)


async def escalate_due(uow: UnitOfWork, ctx: Context, *, limit: int = 100) -> list[str]:
    """Escalate up to ``limit`` alerts whose time to acknowledge ran out; returns their ids.
    Flushes ``uow``; the caller commits."""
    now = ctx.clock.now()
    escalated = []
    for alert in await uow.due_alerts(now=now, limit=limit):
        level = alert.escalation_level + 1
        first_breach = not alert.sla_breached
        alert.sla_breached = True
        alert.updated_at = now
        team = ctx.router.team(alert.team)
        has_level = bool(team and team.recipients(level))
        if has_level:
            alert.escalation_level = level
            await notify(uow, ctx, alert, kind="escalation", level=level, now=now)
            more = bool(team and team.recipients(level + 1))
            alert.sla_due_at = ctx.sla_due(alert.severity, alert.team, now) if more else None
        else:
            alert.sla_due_at = None  # past the last level: the breach stays recorded, nobody further to tell
        uow.add_event(history_step(
            alert, action="sla_breached", actor="system:sla", at=now, previous=alert.status,
            note=f"escalated to level {level}" if has_level else "no further escalation level",
        ))
        uow.save_alert(alert)
        uow.enqueue([updated_event(ctx, alert, previous=alert.status, actor="system:sla",
                                   note=f"SLA breached; escalation level {alert.escalation_level}", at=now,
                                   event_id=derived_id("sla", alert.alert_id, level))])
        if first_breach:
            ctx.metrics.sla_breaches.labels(str(alert.severity)).inc()
        escalated.append(alert.alert_id)
        logger.info("alert escalated", extra={"alert_id": alert.alert_id, "level": level, "severity": alert.severity})
    await uow.flush()
    return escalated
