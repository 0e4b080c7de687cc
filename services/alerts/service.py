"""Use cases of alerts: score feedback, raise / group / reopen alerts, decide
notifications, escalate on missed SLAs, and move alerts through the recovery
loop. Plain async functions taking a connection (inside the caller's
transaction) and a :class:`Context`; no FastAPI, no aiokafka. Follow-up events
go to the outbox in the same transaction as the state change they describe.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from services.alerts import domain, emails
from services.alerts import repository as repo
from shared.clock import Clock
from services.alerts.domain import Alert, AlertNotFound, Forbidden
from services.alerts.links import LINK, MANAGER, Signer
from services.alerts.metrics import AlertsMetrics
from services.alerts.routing import Router
from services.alerts.scoring import Scorer, ScoreResult
from services.alerts.settings import AlertsSettings
from services.alerts.writes import BatchWrites, Writes
from shared.contracts import (
    AlertRaised,
    AlertStatus,
    AlertUpdated,
    Customer,
    FeedbackReceived,
    FeedbackScored,
    SurveyRequested,
)
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_SCORED, SURVEY_REQUESTED, Envelope
from shared.errors import PermanentError
from shared.outbox import enqueue

logger = logging.getLogger(__name__)

SOURCE = "/alerts"
_IDS = uuid.UUID("6f1c2b0e-5b7a-4d8e-9a51-3c2d7e0b9f14")  # namespace of derived (deterministic) ids


def derived_id(*parts: object) -> str:
    """A deterministic id: a retried step produces the same notification / event id."""
    return str(uuid.uuid5(_IDS, "/".join(str(p) for p in parts)))


@dataclass
class Context:
    """Everything a use case needs besides the connection."""

    settings: AlertsSettings
    scorer: Scorer
    router: Router
    clock: Clock
    signer: Signer
    metrics: AlertsMetrics | None = None
    # Publishes events and waits for Kafka's acknowledgement (the process's publisher; set at start).
    publish: Callable[[list[tuple[str, Envelope]]], Awaitable[None]] | None = None


@dataclass(frozen=True)
class Actor:
    """Who did something: ``admin``, a manager's email, ``system:sla`` ..."""

    name: str
    admin: bool = False

    def may_act_on(self, alert: Alert) -> bool:
        return self.admin or self.name.lower() in {r.lower() for r in alert.recipients}


def _scorer_lang(language: str | None) -> str | None:
    if not language:
        return None
    head = language.split("-")[0].lower()
    return head if head in ("zh", "en") else None


def _topic(ctx: Context, event_type: Any) -> str:
    return ctx.settings.topic(event_type.topic)


# ------------------------------------------------------------------------------------------ events
def _updated_event(ctx: Context, alert: Alert, *, previous: str | None, actor: str, note: str | None,
                   at: datetime, event_id: str | None = None) -> tuple[str, Envelope]:
    data = AlertUpdated(
        alert_id=alert.alert_id,
        status=AlertStatus(alert.status),
        previous_status=AlertStatus(previous) if previous else None,
        severity=alert.severity,
        channel=alert.channel,
        location=alert.location,
        touchpoint=alert.touchpoint,
        actor=actor,
        note=note,
        at=at,
        raised_at=alert.raised_at,
        acknowledged_at=alert.acknowledged_at,
        resolved_at=alert.resolved_at,
        sla_breached=alert.sla_breached,
        feedback_count=alert.feedback_count,
    )
    return _topic(ctx, ALERT_UPDATED), Envelope.new(
        ALERT_UPDATED, data, source=SOURCE, key=f"alert:{alert.alert_id}", subject=alert.alert_id, id=event_id, time=at
    )


# ------------------------------------------------------------------------------------------ notifications
async def _silence_for(w: Writes, alert: Alert, now: datetime) -> str | None:
    for silence in await w.silences(now):
        if domain.silence_matches(
            silence["matchers"], location=alert.location, touchpoint=alert.touchpoint, channel=alert.channel,
            severity=alert.severity, team=alert.team,
        ):
            return silence["silence_id"]
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


_UNSET: Any = object()


async def notify(w: Writes, ctx: Context, alert: Alert, *, kind: str, level: int,
                 now: datetime, new_alert: bool = False, feedback: list[dict[str, Any]] | None = None,
                 silence_id: str | None = _UNSET) -> str | None:
    """Record one notification of ``alert`` to escalation ``level`` (rendered now, sent by the sender).

    A matching silence stores it as ``suppressed``. Returns its id, or None when the level has nobody.
    ``new_alert``, ``feedback`` and ``silence_id`` spare queries when the caller knows them.
    """
    team = ctx.router.team(alert.team)
    recipients = team.recipients(level) if team else []
    if not recipients:
        return None
    seq = await w.next_seq(alert.alert_id, kind, level, new_alert=new_alert)
    notification_id = derived_id(alert.alert_id, kind, level, seq)
    if silence_id is _UNSET:
        silence_id = await _silence_for(w, alert, now)
    if feedback is None:
        feedback = await w.alert_feedback(alert.alert_id)
    history: dict[str, Any] = {}
    if alert.customer_key:
        history = await repo.customer_history(
            w.conn, customer_key=alert.customer_key,
            since=now - timedelta(days=ctx.settings.alerts_history_days),
            exclude=[f["feedback_id"] for f in feedback],
        )
    mail = emails.render(
        kind=kind, alert=alert, feedback=feedback, history=history,
        links=_links(ctx, alert, notification_id, now), level=level,
    )
    await w.add_notification(
        notification_id=notification_id, alert_id=alert.alert_id, kind=kind, level=level, seq=seq,
        recipients=recipients, subject=mail.subject, body_text=mail.text, body_html=mail.html,
        message_id=emails.message_id(notification_id), status="suppressed" if silence_id else "pending",
        silence_id=silence_id, now=now,
    )
    if silence_id:
        if ctx.metrics:
            ctx.metrics.silenced.inc()
    else:
        alert.last_notified_at = now
    return notification_id


# ------------------------------------------------------------------------------------------ feedback
async def on_feedback(conn: asyncpg.Connection, ctx: Context, events: list[Envelope]) -> None:
    """Score a batch of ``feedback.received.v1`` and publish their ``feedback.scored.v1``;
    negative feedback (and recovery answers) then raise, group or reopen alerts.

    The scored events are derived one for one from the consumed events (ids included), so they
    are published directly, not through the outbox: while the batch's writes go on, and
    acknowledged by Kafka before its transaction commits. If the process dies before the commit
    (or a write fails), the redelivered batch publishes the same event ids again and their
    consumers drop the copies; if Kafka does not acknowledge, the batch fails and is retried.
    Customers' moments are written for the whole batch in one statement, before any alert reads
    that history.
    """
    if ctx.publish is None:
        raise RuntimeError("the alerts context has no publisher (set at start-up)")
    now = ctx.clock.now()
    scored_topic = _topic(ctx, FEEDBACK_SCORED)
    published: list[tuple[str, Envelope]] = []
    moments: list[tuple[Any, ...]] = []
    follow_up: list[tuple[FeedbackReceived, ScoreResult, str | None]] = []
    for event in events:
        fb: FeedbackReceived = event.data  # type: ignore[assignment]
        score = _score(ctx, fb)
        published.append((scored_topic, _scored_event(fb, score, now)))
        customer_key = fb.customer.key() if fb.customer else None
        if customer_key:
            moments.append((customer_key, fb.id, score.mot, fb.channel.value, fb.location, fb.touchpoint,
                            fb.occurred_at or fb.received_at))
        if score.negative or (fb.survey and fb.survey.recovery_for_alert_id):
            follow_up.append((fb, score, customer_key))
    publishing = asyncio.ensure_future(ctx.publish(published))
    try:
        await repo.add_moments(conn, moments)
        await _follow_up(conn, ctx, follow_up, now)
    except BaseException:
        publishing.cancel()
        await asyncio.gather(publishing, return_exceptions=True)
        raise
    await publishing


def _score(ctx: Context, fb: FeedbackReceived) -> ScoreResult:
    rating = fb.rating.model_dump(mode="json") if fb.rating else None
    try:
        score = ctx.scorer.score(fb.text, lang=_scorer_lang(fb.language), rating=rating)
    except ValueError as exc:
        raise PermanentError(f"feedback {fb.id} cannot be scored: {exc}") from exc
    if ctx.metrics:
        ctx.metrics.scored.labels(f"{score.mot:+d}").inc()
    return score


def _scored_event(fb: FeedbackReceived, score: ScoreResult, now: datetime) -> Envelope:
    scored = FeedbackScored.model_construct(  # every value below is already valid
        feedback_id=fb.id, channel=fb.channel, location=fb.location, touchpoint=fb.touchpoint,
        occurred_at=fb.occurred_at, received_at=fb.received_at, rating=fb.rating, mot=score.mot,
        negative=score.negative, confidence=score.confidence, cues=score.cues[:20],
        language=fb.language or (score.lang if score.lang in ("zh", "en") else None), escalation=score.escalation,
    )
    return Envelope.new(FEEDBACK_SCORED, scored, source=SOURCE, key=fb.partition_key(), subject=fb.id,
                        id=derived_id("scored", fb.id), time=now)


async def _follow_up(conn: asyncpg.Connection, ctx: Context,
                     follow_up: list[tuple[FeedbackReceived, ScoreResult, str | None]], now: datetime) -> None:
    """Negative feedback and recovery answers: recovery answers one by one, then every other
    negative feedback of the batch together."""
    linked = await repo.linked_feedback(conn, [fb.id for fb, _, _ in follow_up])
    negatives: list[tuple[FeedbackReceived, ScoreResult, str | None]] = []
    for fb, score, customer_key in follow_up:
        if fb.id in linked:
            # The same feedback re-submitted under a new event id (e.g. intake's retry): already on an alert.
            logger.info("feedback already linked to an alert", extra={"feedback_id": fb.id})
            continue
        linked.add(fb.id)
        recovery_for = fb.survey.recovery_for_alert_id if fb.survey else None
        if recovery_for and await _recovery_answer(conn, ctx, fb, score, recovery_for, now):
            continue
        if score.negative:
            negatives.append((fb, score, customer_key))
    if negatives:
        await _negatives(conn, ctx, negatives, now)


def _link_kwargs(fb: FeedbackReceived, score: ScoreResult, now: datetime) -> dict[str, Any]:
    return dict(
        feedback_id=fb.id, mot=score.mot, confidence=score.confidence, cues=score.cues[:20],
        escalation=score.escalation, channel=fb.channel.value, location=fb.location, touchpoint=fb.touchpoint,
        text=fb.text, rating=fb.rating.model_dump(mode="json") if fb.rating else None,
        language=fb.language or score.lang, occurred_at=fb.occurred_at, received_at=fb.received_at, linked_at=now,
    )


def _sla_due(ctx: Context, severity: int, team: str, now: datetime) -> datetime:
    return now + timedelta(seconds=ctx.router.sla_seconds(severity, team))


async def _recovery_answer(conn: asyncpg.Connection, ctx: Context, fb: FeedbackReceived, score: ScoreResult,
                           alert_id: str, now: datetime) -> bool:
    """A recovery survey answer: recorded on its alert; a negative one reopens it. False if the alert is unknown."""
    alert = await repo.get_alert(conn, alert_id, for_update=True)
    if alert is None:
        logger.warning("recovery answer for an unknown alert", extra={"feedback_id": fb.id, "alert_id": alert_id})
        return False
    await repo.link_feedback(conn, alert_id=alert.alert_id, role="recovery_answer", **_link_kwargs(fb, score, now))
    if not score.negative:
        await repo.add_event(conn, alert_id=alert.alert_id, at=now, action="recovery_answer", actor="customer",
                             from_status=alert.status, to_status=alert.status, note=f"MOT {score.mot:+d}")
        return True
    previous = alert.status
    alert.severity = min(alert.severity, score.mot)
    alert.feedback_count += 1
    alert.last_feedback_at = now
    alert.updated_at = now
    if previous == AlertStatus.RESOLVED.value:
        alert.status = AlertStatus.REOPENED.value
        alert.resolved_at = None
        alert.resolved_by = None
        alert.reopen_count += 1
        alert.escalation_level = 1
        alert.sla_due_at = _sla_due(ctx, alert.severity, alert.team, now)
        action, kind = "reopened", "reopened"
        if ctx.metrics:
            ctx.metrics.reopened.inc()
    else:
        action, kind = "recovery_answer", "update"
    await repo.add_event(conn, alert_id=alert.alert_id, at=now, action=action, actor="customer",
                         from_status=previous, to_status=alert.status, note=f"MOT {score.mot:+d}")
    await notify(Writes(conn), ctx, alert, kind=kind, level=1, now=now)
    await repo.save_alert(conn, alert)
    await enqueue(conn, [_updated_event(ctx, alert, previous=previous, actor="customer",
                                        note="recovery survey answered negatively", at=now,
                                        event_id=derived_id("updated", alert.alert_id, fb.id))])
    return True


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


async def _negatives(conn: asyncpg.Connection, ctx: Context,
                     negatives: list[tuple[FeedbackReceived, ScoreResult, str | None]], now: datetime) -> None:
    """Raise or group a batch's negative feedback, in order: the group keys locked and the open
    alerts they may join read once, the writes held by :class:`BatchWrites` and flushed together."""
    window = ctx.settings.alerts_group_window_seconds
    since = now - timedelta(seconds=window)
    places = list({(fb.location, fb.touchpoint) for fb, _, _ in negatives if fb.location and window > 0})
    customers = list({key for _, _, key in negatives if key})
    await repo.lock_group_keys(conn, [*customers, *(f"place:{loc}/{tp}" for loc, tp in places)])
    index = _OpenAlerts(await repo.open_alerts_for(conn, customer_keys=customers, places=places, since=since), since)
    w = BatchWrites(conn)
    for fb, score, customer_key in negatives:
        existing, reason = None, "customer"
        if customer_key:
            existing = index.for_customer(customer_key)
        if existing is None and fb.location and window > 0:
            existing, reason = index.for_place(fb.location, fb.touchpoint), "place"
        if existing is not None:
            await _group(w, ctx, existing, fb, score, reason, now)
        else:
            index.add(await _raise(w, ctx, fb, score, customer_key, now))
    await w.flush()


async def _raise(w: BatchWrites, ctx: Context, fb: FeedbackReceived, score: ScoreResult,
                 customer_key: str | None, now: datetime) -> Alert:
    severity = score.mot
    decision = ctx.router.route(location=fb.location, touchpoint=fb.touchpoint, channel=fb.channel.value,
                                severity=severity)
    alert = Alert(
        alert_id=derived_id("alert", fb.id), feedback_id=fb.id, severity=severity, status=AlertStatus.OPEN.value,
        channel=fb.channel.value, location=fb.location, touchpoint=fb.touchpoint, customer_key=customer_key,
        customer=fb.customer.model_dump(mode="json", exclude_none=True) if fb.customer else None,
        language=fb.language or (score.lang if score.lang in ("zh", "en") else None),
        summary=domain.summarise(fb.text, channel=fb.channel.value, mot=severity),
        route=decision.route, team=decision.team_name, recipients=decision.team.everyone(), silence_id=None,
        raised_at=now, sla_due_at=_sla_due(ctx, severity, decision.team_name, now), escalation_level=1,
        sla_breached=False, acknowledged_at=None, acknowledged_by=None, resolved_at=None, resolved_by=None,
        reopen_count=0, feedback_count=1, last_feedback_at=now, last_notified_at=None, updated_at=now,
    )
    alert.silence_id = await _silence_for(w, alert, now)
    if alert.silence_id is None:
        alert.last_notified_at = now
    w.insert_alert(alert)
    linked = _link_kwargs(fb, score, now)
    w.link_feedback(alert_id=alert.alert_id, role="raised", **linked)
    w.add_event(alert_id=alert.alert_id, at=now, action="raised", actor="system",
                from_status=None, to_status=alert.status,
                note=f"route {decision.route}" + (f"; silenced by {alert.silence_id}" if alert.silence_id else ""))
    await notify(w, ctx, alert, kind="raised", level=1, now=now, new_alert=True, silence_id=alert.silence_id,
                 feedback=[{**linked, "role": "raised"}])
    raised = AlertRaised(
        alert_id=alert.alert_id, feedback_id=fb.id, severity=severity, channel=fb.channel, location=fb.location,
        touchpoint=fb.touchpoint, team=alert.team, summary=alert.summary, raised_at=now, sla_due_at=alert.sla_due_at,
    )
    w.enqueue([(_topic(ctx, ALERT_RAISED), Envelope.new(
        ALERT_RAISED, raised, source=SOURCE, key=f"alert:{alert.alert_id}", subject=alert.alert_id,
        id=derived_id("raised", alert.alert_id), time=now,
    ))])
    if ctx.metrics:
        ctx.metrics.raised.labels(str(severity)).inc()
    logger.info("alert raised", extra={"alert_id": alert.alert_id, "feedback_id": fb.id, "severity": severity,
                                        "team": alert.team, "silenced": bool(alert.silence_id)})
    return alert


async def _group(w: BatchWrites, ctx: Context, alert: Alert, fb: FeedbackReceived, score: ScoreResult,
                 reason: str, now: datetime) -> None:
    w.link_feedback(alert_id=alert.alert_id, role="grouped", **_link_kwargs(fb, score, now))
    worse = score.mot < alert.severity
    alert.feedback_count += 1
    alert.last_feedback_at = now
    alert.updated_at = now
    if worse:
        alert.severity = score.mot
        if alert.status in domain.UNACKNOWLEDGED and alert.sla_due_at is not None:
            alert.sla_due_at = min(alert.sla_due_at, _sla_due(ctx, alert.severity, alert.team, now))
    w.add_event(alert_id=alert.alert_id, at=now, action="grouped", actor="system",
                from_status=alert.status, to_status=alert.status,
                note=f"feedback {fb.id} (MOT {score.mot:+d}) joined by {reason}")
    interval = ctx.settings.alerts_update_min_interval_seconds
    quiet = alert.last_notified_at is not None and (now - alert.last_notified_at).total_seconds() < interval
    if worse or not quiet:
        await notify(w, ctx, alert, kind="update", level=max(alert.escalation_level, 1), now=now)
    w.save_alert(alert)
    w.enqueue([_updated_event(ctx, alert, previous=alert.status, actor="system",
                              note=f"grouped ({reason})", at=now,
                              event_id=derived_id("updated", alert.alert_id, fb.id))])
    if ctx.metrics:
        ctx.metrics.grouped.labels(reason).inc()


# ------------------------------------------------------------------------------------------ SLA
async def escalate_due(conn: asyncpg.Connection, ctx: Context, *, limit: int = 100) -> list[str]:
    """Escalate alerts whose time to acknowledge ran out (call inside a transaction).

    ``FOR UPDATE SKIP LOCKED``: replicas running this concurrently take different alerts.
    """
    now = ctx.clock.now()
    escalated = []
    for alert in await repo.due_alerts(conn, now=now, limit=limit):
        level = alert.escalation_level + 1
        first_breach = not alert.sla_breached
        alert.sla_breached = True
        alert.updated_at = now
        team = ctx.router.team(alert.team)
        has_level = bool(team and team.recipients(level))
        if has_level:
            alert.escalation_level = level
            await notify(Writes(conn), ctx, alert, kind="escalation", level=level, now=now)
            more = bool(team and team.recipients(level + 1))
            alert.sla_due_at = _sla_due(ctx, alert.severity, alert.team, now) if more else None
        else:
            alert.sla_due_at = None  # past the last level: the breach stays recorded, nobody further to tell
        await repo.add_event(conn, alert_id=alert.alert_id, at=now, action="sla_breached", actor="system:sla",
                             from_status=alert.status, to_status=alert.status,
                             note=f"escalated to level {level}" if has_level else "no further escalation level")
        await repo.save_alert(conn, alert)
        await enqueue(conn, [_updated_event(ctx, alert, previous=alert.status, actor="system:sla",
                                            note=f"SLA breached; escalation level {alert.escalation_level}", at=now,
                                            event_id=derived_id("sla", alert.alert_id, level))])
        if ctx.metrics and first_breach:
            ctx.metrics.sla_breaches.labels(str(alert.severity)).inc()
        escalated.append(alert.alert_id)
        logger.info("alert escalated", extra={"alert_id": alert.alert_id, "level": level, "severity": alert.severity})
    return escalated


# ------------------------------------------------------------------------------------------ recovery loop
async def _load(conn: asyncpg.Connection, alert_id: str, actor: Actor) -> Alert:
    alert = await repo.get_alert(conn, alert_id, for_update=True)
    if alert is None:
        raise AlertNotFound(alert_id)
    if not actor.may_act_on(alert):
        raise Forbidden(f"{actor.name} is not on the team of alert {alert_id}")
    return alert


def _acknowledge(ctx: Context, alert: Alert, actor: Actor, now: datetime) -> None:
    if alert.acknowledged_at is None:
        alert.acknowledged_at = now
        alert.acknowledged_by = actor.name
        if ctx.metrics:
            ctx.metrics.time_to_ack.labels(str(alert.severity)).observe((now - alert.raised_at).total_seconds())
    alert.sla_due_at = None


async def _commit_move(conn: asyncpg.Connection, ctx: Context, alert: Alert, previous: str, *, action: str,
                       actor: Actor, note: str | None, now: datetime) -> Alert:
    alert.updated_at = now
    await repo.save_alert(conn, alert)
    await repo.add_event(conn, alert_id=alert.alert_id, at=now, action=action, actor=actor.name,
                         from_status=previous, to_status=alert.status, note=note)
    await enqueue(conn, [_updated_event(ctx, alert, previous=previous, actor=actor.name, note=note, at=now)])
    logger.info("alert moved", extra={"alert_id": alert.alert_id, "action": action, "from": previous,
                                       "to": alert.status})
    return alert


async def acknowledge(conn: asyncpg.Connection, ctx: Context, alert_id: str, *, actor: Actor,
                      note: str | None = None) -> Alert:
    alert = await _load(conn, alert_id, actor)
    domain.check_ack(alert)
    now, previous = ctx.clock.now(), alert.status
    _acknowledge(ctx, alert, actor, now)
    alert.status = AlertStatus.ACKNOWLEDGED.value
    return await _commit_move(conn, ctx, alert, previous, action="acknowledged", actor=actor, note=note, now=now)


async def transition(conn: asyncpg.Connection, ctx: Context, alert_id: str, *, step: str, actor: Actor,
                     note: str | None = None) -> Alert:
    alert = await _load(conn, alert_id, actor)
    domain.check_step(alert, step)
    now, previous = ctx.clock.now(), alert.status
    _acknowledge(ctx, alert, actor, now)
    alert.status = step
    return await _commit_move(conn, ctx, alert, previous, action=step, actor=actor, note=note, now=now)


async def resolve(conn: asyncpg.Connection, ctx: Context, alert_id: str, *, actor: Actor,
                  note: str | None = None) -> Alert:
    """Resolve (acknowledging it if nobody had) and ask the customer a recovery survey, if reachable."""
    alert = await _load(conn, alert_id, actor)
    domain.check_resolve(alert)
    now, previous = ctx.clock.now(), alert.status
    _acknowledge(ctx, alert, actor, now)
    alert.status = AlertStatus.RESOLVED.value
    alert.resolved_at = now
    alert.resolved_by = actor.name
    if ctx.metrics:
        ctx.metrics.time_to_resolve.labels(str(alert.severity)).observe((now - alert.raised_at).total_seconds())
    alert = await _commit_move(conn, ctx, alert, previous, action="resolved", actor=actor, note=note, now=now)
    customer = Customer.model_validate(alert.customer) if alert.customer else None
    if customer is not None and customer.email:
        request = SurveyRequested(
            request_id=derived_id("recovery-survey", alert.alert_id, alert.reopen_count), kind="recovery",
            alert_id=alert.alert_id, customer=customer, language=alert.language, location=alert.location,
            touchpoint=alert.touchpoint, requested_at=now,
        )
        await enqueue(conn, [(_topic(ctx, SURVEY_REQUESTED), Envelope.new(
            SURVEY_REQUESTED, request, source=SOURCE, key=f"alert:{alert.alert_id}", subject=alert.alert_id,
            id=request.request_id, time=now,
        ))])
        await repo.add_event(conn, alert_id=alert.alert_id, at=now, action="recovery_survey_requested",
                             actor="system", from_status=alert.status, to_status=alert.status, note=None)
    return alert


async def apply_action(conn: asyncpg.Connection, ctx: Context, alert_id: str, *, action: str, actor: Actor,
                       note: str | None = None) -> Alert:
    """ack / explore / offer / action / confirm / resolve (the email links and the API share this)."""
    if action == "ack":
        return await acknowledge(conn, ctx, alert_id, actor=actor, note=note)
    if action == "resolve":
        return await resolve(conn, ctx, alert_id, actor=actor, note=note)
    return await transition(conn, ctx, alert_id, step=action, actor=actor, note=note)


# ------------------------------------------------------------------------------------------ silences & tokens
async def create_silence(conn: asyncpg.Connection, ctx: Context, *, matchers: dict[str, Any],
                         starts_at: datetime | None, ends_at: datetime, actor: Actor, comment: str) -> dict[str, Any]:
    now = ctx.clock.now()
    silence_id = str(uuid.uuid4())
    await repo.insert_silence(conn, silence_id=silence_id, matchers=matchers, starts_at=starts_at or now,
                              ends_at=ends_at, created_by=actor.name, comment=comment, created_at=now)
    logger.info("silence created", extra={"silence_id": silence_id, "admin": actor.admin})
    return next(s for s in await repo.list_silences(conn, now=now, include_expired=True)
                if s["silence_id"] == silence_id)


async def issue_manager_token(conn: asyncpg.Connection, ctx: Context, *, email: str, actor: Actor,
                              ttl_days: int | None = None) -> dict[str, Any]:
    now = ctx.clock.now()
    token_id = str(uuid.uuid4())
    expires = now + timedelta(days=ttl_days or ctx.settings.alerts_manager_token_ttl_days)
    await repo.insert_token(conn, token_id=token_id, email=email.lower(), issued_by=actor.name, issued_at=now,
                            expires_at=expires)
    token = ctx.signer.sign(MANAGER, {"t": token_id, "e": email.lower()}, expires_at=expires)
    return {"token": token, "token_id": token_id, "email": email.lower(), "expires_at": expires}


async def refresh_open_gauge(conn: asyncpg.Connection, ctx: Context) -> None:
    if ctx.metrics is None:
        return
    counts = await repo.open_counts(conn)
    for severity in (-3, -2, -1):
        ctx.metrics.open.labels(str(severity)).set(counts.get(severity, 0))
