"""Request and response bodies of the alerts HTTP API."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from services.alerts import queries
from services.alerts.domain import Alert, Delivery, Verdict
from services.alerts.silences import Silence, SilenceEvent
from shared.contracts import Key, Text, Timestamp

Glob = Annotated[Key, Field(min_length=1, max_length=200)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Note(_In):
    note: Text | None = Field(None, max_length=4000, description="What was done or found; kept in the alert's history.")


class TransitionIn(Note):
    step: Literal["explore", "offer", "action", "confirm"] = Field(
        description="The next step of the MOT recovery loop: explore -> offer -> action -> confirm."
    )


class VerdictIn(_In):
    verdict: Literal["correct", "false_alarm"] = Field(
        description="correct: a negative moment, rightly alerted; false_alarm: the feedback is not negative."
    )
    feedback_id: Key | None = Field(
        None, max_length=200,
        description="The feedback judged (one the alert holds as negative); default: the one that raised it.",
    )
    note: Text | None = Field(None, max_length=4000, description="Why; kept with the verdict.")


class VerdictOut(BaseModel):
    verdict_id: str
    alert_id: str
    feedback_id: str
    verdict: str = Field(description="correct or false_alarm.")
    decided_by: str
    decided_at: datetime
    via: str = Field(description="api or email_link.")
    note: str | None
    current: bool = Field(description="The current verdict on its feedback; false once a later one replaced it.")
    replaced_at: datetime | None
    language: str | None
    scored: dict[str, Any] = Field(description="What the scorer said when the feedback was alerted: mot, confidence, "
                                   "p_negative, forced_by, cues, escalation.")

    @classmethod
    def of(cls, verdict: Verdict) -> VerdictOut:
        return cls(verdict_id=verdict.verdict_id, alert_id=verdict.alert_id, feedback_id=verdict.feedback_id,
                   verdict=verdict.verdict, decided_by=verdict.decided_by, decided_at=verdict.decided_at,
                   via=verdict.via, note=verdict.note, current=verdict.replaced_at is None,
                   replaced_at=verdict.replaced_at, language=verdict.language, scored=verdict.score)


class Matchers(_In):
    """All given must match; each a glob or list of globs (case-insensitive), severity a list."""

    location: Glob | list[Glob] | None = None
    touchpoint: Glob | list[Glob] | None = None
    channel: Glob | list[Glob] | None = None
    team: Glob | list[Glob] | None = None
    severity: list[Annotated[int, Field(ge=-3, le=-1)]] | None = None

    @model_validator(mode="after")
    def _something(self) -> Matchers:
        if not self.model_dump(exclude_none=True):
            raise ValueError("a silence needs at least one matcher (it would mute everything)")
        return self


class SilenceIn(_In):
    matchers: Matchers = Field(description="A manager's silence names their team(s) in `team` (no globs); a silence "
                               "of every team (no `team`, or a glob) is an admin's to make.")
    starts_at: Timestamp | None = Field(None, description="Default: now.")
    ends_at: Timestamp = Field(description="At most ALERTS_SILENCE_MAX_DAYS (default 7) after its start.")
    comment: Text = Field(min_length=1, max_length=2000, description="Why (e.g. 'known outage at PEK-T3, ticket 4711').")
    include_escalations: bool = Field(
        False, description="Admin only: also mute the escalation of a -3 alert beyond level 1 (by default a "
        "silence never does).",
    )

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("needs a UTC offset")
        return value

    @model_validator(mode="after")
    def _order(self) -> SilenceIn:
        if self.starts_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class SilenceOut(BaseModel):
    silence_id: str
    matchers: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    expired_by: str | None = None
    include_escalations: bool
    active: bool

    @classmethod
    def of(cls, silence: Silence, *, active: bool) -> SilenceOut:
        return cls(**asdict(silence), active=active)


class SilenceEventOut(BaseModel):
    at: datetime
    action: str = Field(description="created, expired or capped.")
    actor: str
    detail: dict[str, Any]


class SilenceDetail(SilenceOut):
    history: list[SilenceEventOut] = Field(description="The audit trail, oldest first.")

    @classmethod
    def of_trail(cls, silence: Silence, events: list[SilenceEvent], *, active: bool) -> SilenceDetail:
        history = [SilenceEventOut(at=e.at, action=e.action, actor=e.actor, detail=e.detail) for e in events]
        return cls(**asdict(silence), active=active, history=history)


class TokenIn(_In):
    ttl_days: int | None = Field(None, ge=1, le=3650)
    teams: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        None, max_length=100,
        description="The teams whose alerts the token may list, act on and silence. Default: the teams the routes "
        "file names the manager in (any role or escalation level).",
    )


class TokenOut(BaseModel):
    token: str
    token_id: str
    email: str
    teams: list[str]
    expires_at: datetime


class AlertOut(BaseModel):
    alert_id: str
    feedback_id: str
    severity: int
    status: str
    channel: str
    location: str | None
    touchpoint: str | None
    summary: str
    route: str
    team: str
    silenced: bool
    raised_at: datetime
    sla_due_at: datetime | None
    escalation_level: int
    sla_breached: bool
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    reopen_count: int
    feedback_count: int
    last_feedback_at: datetime
    next_step: str | None
    state_version: int = Field(description="One up at every change of status; email links name the version they "
                               "were made for and are refused on a newer one.")

    @classmethod
    def of(cls, alert: Alert) -> AlertOut:
        data = {k: getattr(alert, k) for k in cls.model_fields if hasattr(alert, k)}
        return cls(**data, silenced=alert.silence_id is not None)


class NotificationOut(BaseModel):
    notification_id: str
    kind: str
    level: int
    seq: int
    recipients: list[str]
    subject: str
    silence_id: str | None
    created_at: datetime
    status: str = Field(description="suppressed (a silence matched: never mailed), or its mails' state: sent when "
                        "every one is, else the least settled (sending, pending, uncertain, failed).")
    attempts: int = Field(description="SMTP attempts of its most tried mail.")
    last_error: str | None
    sent_at: datetime | None = Field(description="When its last mail was sent, once every one is.")
    deliveries: list[Delivery] = Field(description="One mail per recipient, as the mail queue has it (state pending, "
                                       "sending, sent, uncertain or failed; next_attempt_at for a pending one).")

    @classmethod
    def of(cls, view: queries.NotificationView) -> NotificationOut:
        n, mails = view.notification, view.deliveries
        sent = [d.sent_at for d in mails if d.sent_at is not None]
        return cls(
            notification_id=n.notification_id, kind=n.kind, level=n.level, seq=n.seq, recipients=n.recipients,
            subject=n.subject, silence_id=n.silence_id, created_at=n.created_at, status=view.state,
            attempts=max((d.attempts for d in mails), default=0),
            last_error=next((d.last_error for d in mails if d.last_error), None),
            sent_at=max(sent) if view.state == "sent" and sent else None,
            deliveries=mails,
        )


class AlertDetail(AlertOut):
    recipients: list[str]
    silence_id: str | None
    feedback: list[dict[str, Any]]
    history: list[dict[str, Any]]
    notifications: list[NotificationOut]
    verdicts: list[VerdictOut] = Field(description="Managers' verdicts on its feedback, replaced ones included "
                                       "(current: false), oldest first.")

    @classmethod
    def from_detail(cls, detail: queries.AlertDetail) -> AlertDetail:
        alert = detail.alert

        def row(item: Any) -> dict[str, Any]:
            return {k: v for k, v in asdict(item).items() if k != "alert_id"}

        return cls(**AlertOut.of(alert).model_dump(), recipients=alert.recipients, silence_id=alert.silence_id,
                   feedback=[row(f) for f in detail.feedback], history=[row(h) for h in detail.history],
                   notifications=[NotificationOut.of(v) for v in detail.notifications],
                   verdicts=[VerdictOut.of(v) for v in detail.verdicts])


class AlertList(BaseModel):
    alerts: list[AlertOut]
    next_before: datetime | None = Field(None, description="Pass as `before` for the next page.")
