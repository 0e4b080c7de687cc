"""What every use case of alerts is given besides its unit of work: the immutable
:class:`Context` (built whole by ``create_app``), who acts (:class:`Actor`), the derived
(deterministic) ids, and the builders of the rows and events the use cases write.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.alerts.domain import Alert, AlertEvent, FeedbackLink
from services.alerts.metrics import AlertsMetrics
from services.alerts.ports import Publish
from services.alerts.routing import Router
from services.alerts.scoring import Scorer, ScoreResult
from services.alerts.settings import AlertsSettings
from shared.clock import Clock
from shared.contracts import AlertRaised, AlertStatus, AlertUpdated, FeedbackReceived, FeedbackScored, SurveyRequested
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_SCORED, SURVEY_REQUESTED, Envelope, EventType
from shared.signing import Signer

if TYPE_CHECKING:  # the use cases never touch it; only the routes do (and it imports FastAPI)
    from shared.auth import BearerAuth

SOURCE = "/keymoment/alerts"
"""The CloudEvents ``source`` of every event alerts publishes."""

_IDS = uuid.UUID("6f1c2b0e-5b7a-4d8e-9a51-3c2d7e0b9f14")  # namespace of derived (deterministic) ids


def derived_id(*parts: object) -> str:
    """A deterministic id: a retried step produces the same notification / event id."""
    return str(uuid.uuid5(_IDS, "/".join(str(p) for p in parts)))


@dataclass(frozen=True)
class Context:
    """Everything a use case needs besides its unit of work; built whole at start-up."""

    settings: AlertsSettings
    scorer: Scorer
    router: Router
    clock: Clock
    signer: Signer  # alert links and manager tokens, a keyring each (AlertsSettings.signer)
    metrics: AlertsMetrics
    publish: Publish  # waits for Kafka's acknowledgement
    auth: BearerAuth  # the API's callers: the admin token and manager tokens (api/deps.py)

    def topic(self, event_type: EventType[Any]) -> str:
        return self.settings.topic(event_type.topic)

    def sla_due(self, severity: int, team: str, now: datetime) -> datetime:
        """When an alert of this severity and team, (re)armed ``now``, escalates unless acknowledged."""
        return now + timedelta(seconds=self.router.sla_seconds(severity, team))

    def subjects(self, fb: FeedbackReceived) -> list[str]:
        """Pseudonyms of every contact of the feedback's customer, the grouping key first (none: anonymous)."""
        return fb.customer.pseudonyms(self.settings.privacy_key()) if fb.customer else []


@dataclass(frozen=True)
class Actor:
    """Who did something: ``admin``, a manager (their email and the teams whose alerts they
    may see, act on and silence), ``system:sla`` ..."""

    name: str
    admin: bool = False
    teams: frozenset[str] = frozenset()

    def may_act_on(self, alert: Alert) -> bool:
        return self.admin or alert.team in self.teams


# ------------------------------------------------------------------------------------------ rows
def feedback_link(ctx: Context, fb: FeedbackReceived, score: ScoreResult, *, alert_id: str, role: str,
                  now: datetime) -> FeedbackLink:
    return FeedbackLink(
        feedback_id=fb.id, alert_id=alert_id, role=role, mot=score.mot, confidence=score.confidence,
        cues=score.cues[:20], escalation=score.escalation, channel=fb.channel.value, location=fb.location,
        touchpoint=fb.touchpoint, text=fb.text, rating=fb.rating.model_dump(mode="json") if fb.rating else None,
        language=fb.language or score.lang, occurred_at=fb.occurred_at, received_at=fb.received_at, linked_at=now,
        p_negative=score.p_negative, forced_by=score.forced_by,
        subjects=ctx.subjects(fb),
    )


def history_step(alert: Alert, *, action: str, actor: str, at: datetime, previous: str | None,
                 note: str | None = None) -> AlertEvent:
    """One step of the alert's history, from ``previous`` to its current status."""
    return AlertEvent(alert_id=alert.alert_id, at=at, action=action, actor=actor, from_status=previous,
                      to_status=alert.status, note=note)


# ------------------------------------------------------------------------------------------ events
def _event(event_type: EventType[Any], data: Any, *, key: str, subject: str, event_id: str | None,
           at: datetime) -> Envelope:
    return Envelope.new(event_type, data, source=SOURCE, key=key, subject=subject, id=event_id, time=at)


def scored_event(ctx: Context, fb: FeedbackReceived, score: ScoreResult, now: datetime) -> tuple[str, Envelope]:
    scored = FeedbackScored.model_construct(  # every value below is already valid
        feedback_id=fb.id, channel=fb.channel, location=fb.location, touchpoint=fb.touchpoint,
        occurred_at=fb.occurred_at, received_at=fb.received_at, rating=fb.rating, mot=score.mot,
        negative=score.negative, confidence=score.confidence, cues=score.cues[:20],
        language=fb.language or (score.lang if score.lang in ("zh", "en") else None), escalation=score.escalation,
    )
    return ctx.topic(FEEDBACK_SCORED), _event(FEEDBACK_SCORED, scored, key=fb.partition_key(ctx.settings.privacy_key()),
                                              subject=fb.id,
                                              event_id=derived_id("scored", fb.id), at=now)


def raised_event(ctx: Context, alert: Alert) -> tuple[str, Envelope]:
    raised = AlertRaised(
        alert_id=alert.alert_id, feedback_id=alert.feedback_id, severity=alert.severity, channel=alert.channel,
        location=alert.location, touchpoint=alert.touchpoint, team=alert.team, summary=alert.summary,
        raised_at=alert.raised_at, sla_due_at=alert.sla_due_at,
    )
    return ctx.topic(ALERT_RAISED), _event(ALERT_RAISED, raised, key=f"alert:{alert.alert_id}",
                                           subject=alert.alert_id, event_id=derived_id("raised", alert.alert_id),
                                           at=alert.raised_at)


def updated_event(ctx: Context, alert: Alert, *, previous: str | None, actor: str, note: str | None,
                  at: datetime, event_id: str | None = None) -> tuple[str, Envelope]:
    data = AlertUpdated(
        alert_id=alert.alert_id, status=AlertStatus(alert.status),
        previous_status=AlertStatus(previous) if previous else None, severity=alert.severity,
        channel=alert.channel, location=alert.location, touchpoint=alert.touchpoint, actor=actor, note=note,
        at=at, raised_at=alert.raised_at, acknowledged_at=alert.acknowledged_at, resolved_at=alert.resolved_at,
        sla_breached=alert.sla_breached, feedback_count=alert.feedback_count,
    )
    return ctx.topic(ALERT_UPDATED), _event(ALERT_UPDATED, data, key=f"alert:{alert.alert_id}",
                                            subject=alert.alert_id, event_id=event_id, at=at)


def survey_requested_event(ctx: Context, request: SurveyRequested) -> tuple[str, Envelope]:
    return ctx.topic(SURVEY_REQUESTED), _event(SURVEY_REQUESTED, request, key=f"alert:{request.alert_id}",
                                               subject=request.alert_id, event_id=request.request_id,
                                               at=request.requested_at)
