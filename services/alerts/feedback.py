"""Scoring a consumed batch of feedback, and raising or grouping alerts for its negative ones.

The hot path of alerts (the 250 ms p99 from intake's 202 to the alert stored): per batch, the
group keys are locked and the open alerts read once, in a fixed order; every write is held by
the unit of work and flushed in one statement; ``feedback.scored.v1`` is published
while that goes on and acknowledged before the caller commits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from services.alerts import domain, recovery
from services.alerts.context import (
    Context,
    derived_id,
    feedback_link,
    history_step,
    raised_event,
    scored_event,
    updated_event,
)
from services.alerts.domain import Alert, Moment
from services.alerts.notify import history_since, notify, silence_for
from services.alerts.routing import Decision
from services.alerts.scoring import ScoreResult
from services.alerts.unit_of_work import UnitOfWork
from shared.contracts import AlertStatus, FeedbackReceived
from shared.errors import PermanentError
from shared.events import Envelope, event_source

logger = logging.getLogger(__name__)

SCORE_CHUNK = 16
"""Texts scored between two turns of the event loop (~3 ms)."""

SURVEY_SOURCE = event_source("survey")
"""The only source whose recovery answers are honoured: survey's own events."""

_Alerting = tuple[ScoreResult, Decision]  # the score an alert carries and the route it goes to
# the feedback, the score its alert carries, its customer key, its route
_Negative = tuple[FeedbackReceived, ScoreResult, str | None, Decision]
# the feedback, its score, its customer key, the alert it answers (a recovery answer), whether it alerts
_FollowUp = tuple[FeedbackReceived, ScoreResult, str | None, str | None, _Alerting | None]


async def score_batch(uow: UnitOfWork, ctx: Context, events: list[Envelope]) -> None:
    """Score a batch of feedback and publish their ``feedback.scored.v1``; known customers'
    moments go to their history; feedback that alerts (:func:`alerting`: escalation cues and
    negative ratings always, a text alone at its route's ``min_confidence``) and recovery answers
    then raise, group or reopen alerts. Flushes ``uow``.

    A recovery answer (``survey.recovery_for_alert_id``) is honoured only from survey's own
    events (CloudEvents ``source`` ``/keymoment/survey``): from anywhere else it is ordinary
    feedback, so nobody who may send feedback can reopen or annotate an alert by naming it.

    The scored events are derived one for one from the feedback (ids included), so they are
    published directly, not through the outbox: while the batch's writes go on, and acknowledged
    by Kafka before this returns (before the caller's commit). If the process dies before the
    commit (or a write fails), the redelivered batch publishes the same event ids again and
    their consumers drop the copies; if Kafka does not acknowledge, the batch fails and is retried.
    """
    now = ctx.clock.now()
    started = time.perf_counter()
    published = []
    moments: list[Moment] = []
    follow_up: list[_FollowUp] = []
    # Scored on the event loop a few texts at a time (pure CPU, ~0.2 ms each): between two chunks
    # the loop runs whatever is ready (the mail sender, the HTTP routes), so a large batch never
    # holds them up for longer than a chunk.
    scores = []
    for start in range(0, len(events), SCORE_CHUNK):
        if start:
            await asyncio.sleep(0)
        scores += [_score(ctx, e.data) for e in events[start:start + SCORE_CHUNK]]
    for event, score in zip(events, scores, strict=True):
        fb = event.data
        published.append(scored_event(ctx, fb, score, now))
        subjects = ctx.subjects(fb)
        customer_key = subjects[0] if subjects else None  # a pseudonym: the same key in every service
        if customer_key:
            moments.append(Moment(customer_key=customer_key, feedback_id=fb.id, mot=score.mot, channel=fb.channel.value,
                                  location=fb.location, touchpoint=fb.touchpoint, at=fb.occurred_at or fb.received_at,
                                  subjects=tuple(subjects)))
        recovery_for = _recovery_for(fb, event.source)
        alerts = alerting(ctx, fb, score)
        if alerts or recovery_for:
            follow_up.append((fb, score, customer_key, recovery_for, alerts))
    uow.add_moments(moments)
    publishing = asyncio.ensure_future(ctx.publish(published))
    scored = time.perf_counter()
    try:
        await _follow_up(uow, ctx, follow_up, now)
        followed = time.perf_counter()
        await uow.flush()
        flushed = time.perf_counter()
    except BaseException:
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
        raise
    await publishing
    phase = ctx.metrics.batch_phase
    for name, seconds in (("score", scored - started), ("follow_up", followed - scored), ("flush", flushed - followed),
                          ("publish_wait", time.perf_counter() - flushed)):
        phase.labels(name).observe(seconds)


def _recovery_for(fb: FeedbackReceived, source: str) -> str | None:
    """The alert a feedback answers a recovery survey of, if it is survey's own answer."""
    alert_id = fb.survey.recovery_for_alert_id if fb.survey else None
    if alert_id and source != SURVEY_SOURCE:
        # never the feedback's text or contact details: who sent it is in the source
        logger.warning("recovery answer not from survey: taken as ordinary feedback",
                       extra={"feedback_id": fb.id, "source": source, "alert_id": alert_id})
        return None
    return alert_id


def alerting(ctx: Context, fb: FeedbackReceived, score: ScoreResult) -> _Alerting | None:
    """Whether a scored feedback raises (or joins) an alert: the score its alert carries and the
    route it goes to, else None. Escalation cues and negative ratings always alert
    (``score.forced_by``); a verdict resting on the text alone alerts when its P(negative)
    reaches ``min_confidence`` of the route it would go to (default: the scorer's threshold).
    A route asking for less than the scorer's threshold can alert on a text the scorer scored 0
    or above: that alert is MOT -1, its confidence the text's P(negative).

    Only feedback that may alert on some route is routed: ``Router.route`` is pure Python, no
    round trip to the database."""
    decision = None
    p = score.p_negative
    if score.forced_by is not None or (p is not None and p >= ctx.router.lowest_min_confidence):
        decision = ctx.router.route(location=fb.location, touchpoint=fb.touchpoint, channel=fb.channel.value,
                                    severity=score.mot if score.negative else -1)
    if decision is None or not score.alerts_at(decision.min_confidence):
        if score.negative:  # the scorer says negative; the route asks for more confidence
            ctx.metrics.min_confidence.labels("held").inc()
        return None
    if not score.negative:
        ctx.metrics.min_confidence.labels("lowered").inc()
        cue = f"route {decision.route}: min_confidence {decision.min_confidence:.2f}"
        score = dataclasses.replace(score, negative=True, mot=-1, confidence=p, cues=[cue, *score.cues])
    return score, decision


def _scorer_lang(language: str | None) -> str | None:
    if not language:
        return None
    head = language.split("-")[0].lower()
    return head if head in ("zh", "en") else None


def _score(ctx: Context, fb: FeedbackReceived) -> ScoreResult:
    rating = fb.rating.model_dump(mode="json") if fb.rating else None
    try:
        score = ctx.scorer.score(fb.text, lang=_scorer_lang(fb.language), rating=rating)
    except ValueError as exc:
        raise PermanentError(f"feedback {fb.id} cannot be scored: {exc}") from exc
    ctx.metrics.scored.labels(f"{score.mot:+d}").inc()
    return score


async def _follow_up(uow: UnitOfWork, ctx: Context, follow_up: list[_FollowUp], now: datetime) -> None:
    """Negative feedback and recovery answers: recovery answers one by one, then every other
    negative feedback of the batch together."""
    linked = await uow.linked_feedback([fb.id for fb, *_ in follow_up])
    negatives: list[_Negative] = []
    for fb, score, customer_key, recovery_for, alerts in follow_up:
        if fb.id in linked:
            # The same feedback re-submitted under a new event id (e.g. intake's retry): already on an alert.
            logger.info("feedback already linked to an alert", extra={"feedback_id": fb.id})
            continue
        linked.add(fb.id)
        if recovery_for and await recovery.answer(uow, ctx, fb, score, recovery_for, now):
            continue
        if alerts is not None:
            alert_score, decision = alerts
            negatives.append((fb, alert_score, customer_key, decision))
    if negatives:
        await _negatives(uow, ctx, negatives, now)


class _OpenAlerts:
    """The open alerts a batch of negative feedback may join (read once, locked), kept current as
    the batch raises and grows them: a customer's latest open alert, or a place's latest open
    alert with feedback inside the grouping window."""

    def __init__(self, alerts: list[Alert], since: datetime) -> None:
        self._alerts = alerts
        self._since = since

    def add(self, alert: Alert) -> None:
        self._alerts.append(alert)

    def _latest(self, match: Callable[[Alert], bool]) -> Alert | None:
        found = [a for a in self._alerts if a.status != AlertStatus.RESOLVED.value and match(a)]
        return max(found, key=lambda a: a.raised_at) if found else None

    def for_customer(self, customer_key: str) -> Alert | None:
        return self._latest(lambda a: a.customer_key == customer_key)

    def for_place(self, location: str, touchpoint: str | None) -> Alert | None:
        return self._latest(lambda a: a.location == location and a.touchpoint == touchpoint
                            and a.last_feedback_at >= self._since)


async def _negatives(uow: UnitOfWork, ctx: Context, negatives: list[_Negative], now: datetime) -> None:
    """Raise or group a batch's negative feedback, in order, the group keys locked and the open
    alerts they may join read once."""
    window = ctx.settings.alerts_group_window_seconds
    since = now - timedelta(seconds=window)
    places = list({(fb.location, fb.touchpoint) for fb, *_ in negatives if fb.location and window > 0})
    customers = list({key for _, _, key, _ in negatives if key})
    await uow.lock_group_keys([*customers, *(f"place:{loc}/{tp}" for loc, tp in places)])
    index = _OpenAlerts(await uow.open_alerts_for(customer_keys=customers, places=places, since=since), since)
    await uow.prefetch_histories(customers, since=history_since(ctx, now))  # for the mails of the alerts raised
    for fb, score, customer_key, decision in negatives:
        existing, reason = None, "customer"
        if customer_key:
            existing = index.for_customer(customer_key)
        if existing is None and fb.location and window > 0:
            existing, reason = index.for_place(fb.location, fb.touchpoint), "place"
        if existing is not None:
            await _group(uow, ctx, existing, fb, score, reason, now)
        else:
            index.add(await _raise(uow, ctx, fb, score, customer_key, decision, now))


async def _raise(uow: UnitOfWork, ctx: Context, fb: FeedbackReceived, score: ScoreResult,
                 customer_key: str | None, decision: Decision, now: datetime) -> Alert:
    severity = score.mot
    alert = Alert(
        alert_id=derived_id("alert", fb.id), feedback_id=fb.id, severity=severity, status=AlertStatus.OPEN.value,
        channel=fb.channel.value, location=fb.location, touchpoint=fb.touchpoint, customer_key=customer_key,
        customer=fb.customer.model_dump(mode="json", exclude_none=True) if fb.customer else None,
        language=fb.language or (score.lang if score.lang in ("zh", "en") else None),
        summary=domain.summarise(fb.text, channel=fb.channel.value, mot=severity),
        route=decision.route, team=decision.team_name, recipients=decision.team.everyone(), silence_id=None,
        raised_at=now, sla_due_at=ctx.sla_due(severity, decision.team_name, now), escalation_level=1,
        sla_breached=False, acknowledged_at=None, acknowledged_by=None, resolved_at=None, resolved_by=None,
        reopen_count=0, feedback_count=1, last_feedback_at=now, last_notified_at=None, updated_at=now,
        subjects=ctx.subjects(fb),
    )
    alert.silence_id = await silence_for(uow, alert, now)
    if alert.silence_id is None:
        alert.last_notified_at = now
    uow.add_alert(alert)
    uow.link_feedback(feedback_link(ctx, fb, score, alert_id=alert.alert_id, role="raised", now=now))
    uow.add_event(history_step(
        alert, action="raised", actor="system", at=now, previous=None,
        note=f"route {decision.route}" + (f"; silenced by {alert.silence_id}" if alert.silence_id else ""),
    ))
    await notify(uow, ctx, alert, kind="raised", level=1, now=now)
    uow.enqueue([raised_event(ctx, alert)])
    ctx.metrics.raised.labels(str(severity)).inc()
    logger.info("alert raised", extra={"alert_id": alert.alert_id, "feedback_id": fb.id, "severity": severity,
                                        "team": alert.team, "silenced": bool(alert.silence_id)})
    return alert


async def _group(uow: UnitOfWork, ctx: Context, alert: Alert, fb: FeedbackReceived, score: ScoreResult,
                 reason: str, now: datetime) -> None:
    uow.link_feedback(feedback_link(ctx, fb, score, alert_id=alert.alert_id, role="grouped", now=now))
    worse = score.mot < alert.severity
    alert.feedback_count += 1
    alert.last_feedback_at = now
    alert.updated_at = now
    if worse:
        alert.severity = score.mot
        if alert.status in domain.UNACKNOWLEDGED and alert.sla_due_at is not None:
            alert.sla_due_at = min(alert.sla_due_at, ctx.sla_due(alert.severity, alert.team, now))
    uow.add_event(history_step(alert, action="grouped", actor="system", at=now, previous=alert.status,
                               note=f"feedback {fb.id} (MOT {score.mot:+d}) joined by {reason}"))
    interval = ctx.settings.alerts_update_min_interval_seconds
    quiet = alert.last_notified_at is not None and (now - alert.last_notified_at).total_seconds() < interval
    if worse or not quiet:
        await notify(uow, ctx, alert, kind="update", level=max(alert.escalation_level, 1), now=now)
    uow.save_alert(alert)
    uow.enqueue([updated_event(ctx, alert, previous=alert.status, actor="system", note=f"grouped ({reason})",
                               at=now, event_id=derived_id("updated", alert.alert_id, fb.id))])
    ctx.metrics.grouped.labels(reason).inc()
