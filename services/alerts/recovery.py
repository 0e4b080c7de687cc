"""The MOT recovery loop: a manager acknowledges an alert, takes the steps Explore -> Offer ->
Action -> Confirm in order, and resolves it, which asks the customer a recovery survey; the
customer's answer is recorded on the alert, and a negative one reopens it.

Each public use case flushes its unit of work; the caller commits.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from services.alerts import domain
from services.alerts.context import (
    Actor,
    Context,
    derived_id,
    feedback_link,
    history_step,
    survey_requested_event,
    updated_event,
)
from services.alerts.domain import Alert, AlertNotFound, Forbidden, StateChanged
from services.alerts.notify import notify
from services.alerts.scoring import ScoreResult
from services.alerts.unit_of_work import UnitOfWork
from shared.contracts import AlertStatus, Customer, FeedbackReceived, SurveyRequested

logger = logging.getLogger(__name__)


async def _load(uow: UnitOfWork, alert_id: str, actor: Actor) -> Alert:
    alert = await uow.alert(alert_id)
    if alert is None:
        raise AlertNotFound(alert_id)
    if not actor.may_act_on(alert):
        raise Forbidden(f"{actor.name} is not on the team of alert {alert_id}")
    return alert


def _acknowledge(ctx: Context, alert: Alert, actor: Actor, now: datetime) -> None:
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now
        alert.acknowledged_by = actor.name
        ctx.metrics.time_to_ack.labels(str(alert.severity)).observe((now - alert.raised_at).total_seconds())
    alert.sla_due_at = None


async def _step(uow: UnitOfWork, ctx: Context, alert_id: str, *, actor: Actor, check: Callable[[Alert], None],
                status: str, action: str, note: str | None, expected_version: int | None) -> Alert:
    """Move the alert to ``status`` if ``check`` allows it, acknowledging it if nobody had;
    ``expected_version``: only from that state version (an email link's)."""
    alert = await _load(uow, alert_id, actor)
    if expected_version is not None and alert.state_version != expected_version:
        raise StateChanged(alert_id, alert.status, action, version=expected_version, current=alert.state_version)
    check(alert)
    now, previous = ctx.clock.now(), alert.status
    _acknowledge(ctx, alert, actor, now)
    alert.move_to(status)
    if status == AlertStatus.RESOLVED.value:
        alert.resolved_at = now
        alert.resolved_by = actor.name
        ctx.metrics.time_to_resolve.labels(str(alert.severity)).observe((now - alert.raised_at).total_seconds())
    alert.updated_at = now
    uow.save_alert(alert)
    uow.add_event(history_step(alert, action=action, actor=actor.name, at=now, previous=previous, note=note))
    uow.enqueue([updated_event(ctx, alert, previous=previous, actor=actor.name, note=note, at=now)])
    logger.info("alert moved", extra={"alert_id": alert.alert_id, "action": action, "from": previous,
                                       "to": alert.status})
    return alert


async def acknowledge(uow: UnitOfWork, ctx: Context, alert_id: str, *, actor: Actor,
                      note: str | None = None, expected_version: int | None = None) -> Alert:
    alert = await _step(uow, ctx, alert_id, actor=actor, check=domain.check_ack,
                        status=AlertStatus.ACKNOWLEDGED.value, action="acknowledged", note=note,
                        expected_version=expected_version)
    await uow.flush()
    return alert


async def transition(uow: UnitOfWork, ctx: Context, alert_id: str, *, step: str, actor: Actor,
                     note: str | None = None, expected_version: int | None = None) -> Alert:
    """The next MOT-loop step; taking the first one acknowledges the alert."""
    alert = await _step(uow, ctx, alert_id, actor=actor, check=lambda a: domain.check_step(a, step), status=step,
                        action=step, note=note, expected_version=expected_version)
    await uow.flush()
    return alert


async def resolve(uow: UnitOfWork, ctx: Context, alert_id: str, *, actor: Actor,
                  note: str | None = None, expected_version: int | None = None) -> Alert:
    """Resolve (acknowledging it if nobody had) and ask the customer a recovery survey, if reachable."""
    alert = await _step(uow, ctx, alert_id, actor=actor, check=domain.check_resolve,
                        status=AlertStatus.RESOLVED.value, action="resolved", note=note,
                        expected_version=expected_version)
    customer = Customer.model_validate(alert.customer) if alert.customer else None
    if customer is not None and customer.email:
        uow.enqueue([survey_requested_event(ctx, SurveyRequested(
            request_id=derived_id("recovery-survey", alert.alert_id, alert.reopen_count), kind="recovery",
            alert_id=alert.alert_id, customer=customer, language=alert.language, location=alert.location,
            touchpoint=alert.touchpoint, requested_at=alert.resolved_at,
        ))])
        uow.add_event(history_step(alert, action="recovery_survey_requested", actor="system",
                                   at=alert.updated_at, previous=alert.status))
    await uow.flush()
    return alert


async def apply_action(uow: UnitOfWork, ctx: Context, alert_id: str, *, action: str, actor: Actor,
                       note: str | None = None, expected_version: int | None = None) -> Alert:
    """ack / explore / offer / action / confirm / resolve (the email links and the API share this);
    ``expected_version``: refused (:class:`StateChanged`) unless the alert is still at that state
    version (a link made for an earlier state acts on nothing newer)."""
    if action == "ack":
        return await acknowledge(uow, ctx, alert_id, actor=actor, note=note, expected_version=expected_version)
    if action == "resolve":
        return await resolve(uow, ctx, alert_id, actor=actor, note=note, expected_version=expected_version)
    return await transition(uow, ctx, alert_id, step=action, actor=actor, note=note,
                            expected_version=expected_version)


async def answer(uow: UnitOfWork, ctx: Context, fb: FeedbackReceived, score: ScoreResult, alert_id: str,
                 now: datetime) -> bool:
    """A recovery survey's answer, recorded on its alert; a negative one reopens a resolved
    alert (or, on one still open, notifies its team). False if the alert is unknown. Part of
    a feedback batch: the batch flushes."""
    alert = await uow.alert(alert_id)
    if alert is None:
        logger.warning("recovery answer for an unknown alert", extra={"feedback_id": fb.id, "alert_id": alert_id})
        return False
    uow.link_feedback(feedback_link(ctx, fb, score, alert_id=alert.alert_id, role="recovery_answer", now=now))
    if not score.negative:
        uow.add_event(history_step(alert, action="recovery_answer", actor="customer", at=now,
                                   previous=alert.status, note=f"MOT {score.mot:+d}"))
        return True
    previous = alert.status
    alert.severity = min(alert.severity, score.mot)
    alert.feedback_count += 1
    alert.last_feedback_at = now
    alert.updated_at = now
    if previous == AlertStatus.RESOLVED.value:
        alert.move_to(AlertStatus.REOPENED.value)
        alert.resolved_at = None
        alert.resolved_by = None
        alert.reopen_count += 1
        alert.escalation_level = 1
        alert.sla_due_at = ctx.sla_due(alert.severity, alert.team, now)
        action, kind = "reopened", "reopened"
        ctx.metrics.reopened.inc()
    else:
        action, kind = "recovery_answer", "update"
    uow.add_event(history_step(alert, action=action, actor="customer", at=now, previous=previous,
                               note=f"MOT {score.mot:+d}"))
    await notify(uow, ctx, alert, kind=kind, level=1, now=now)
    uow.save_alert(alert)
    uow.enqueue([updated_event(ctx, alert, previous=previous, actor="customer",
                               note="recovery survey answered negatively", at=now,
                               event_id=derived_id("updated", alert.alert_id, fb.id))])
    return True
