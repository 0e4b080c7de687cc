"""The alert and its recovery loop: states, allowed moves, severity words, and
the rows an alert's life writes (feedback links, history steps, notifications,
customer moments, manager tokens, managers' verdicts); silences are in ``silences.py``.

Pure data and rules; no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.contracts import AlertStatus

OPEN_STATES = frozenset(s.value for s in AlertStatus if s is not AlertStatus.RESOLVED)
UNACKNOWLEDGED = frozenset({AlertStatus.OPEN.value, AlertStatus.REOPENED.value})

# The MOT recovery loop (Explore -> Offer -> Action -> Confirm): the states a
# step may be taken from. Taking the first step of an unacknowledged alert
# acknowledges it.
STEPS: dict[str, frozenset[str]] = {
    "explore": frozenset({"open", "reopened", "acknowledged"}),
    "offer": frozenset({"explore"}),
    "action": frozenset({"offer"}),
    "confirm": frozenset({"action"}),
}
NEXT_STEP: dict[str, str | None] = {
    "open": "explore",
    "reopened": "explore",
    "acknowledged": "explore",
    "explore": "offer",
    "offer": "action",
    "action": "confirm",
    "confirm": None,
    "resolved": None,
}
STEP_TEXT: dict[str, tuple[str, str]] = {
    "explore": ("了解：联系客户，弄清发生了什么", "Explore: contact the customer and find out what happened"),
    "offer": ("提议：向客户提出补救方案", "Offer: propose a remedy to the customer"),
    "action": ("行动：落实补救并修正原因", "Action: carry out the remedy and fix the cause"),
    "confirm": ("确认：与客户确认问题已解决", "Confirm: check with the customer that it is put right"),
}
SEVERITY_TEXT: dict[int, tuple[str, str]] = {
    -3: ("严重", "critical"),
    -2: ("较差", "bad"),
    -1: ("欠佳", "poor"),
}


class AlertNotFound(LookupError):
    pass


class InvalidTransition(ValueError):
    """The move is not allowed from the alert's current state (HTTP 409)."""

    def __init__(self, alert_id: str, status: str, action: str) -> None:
        super().__init__(f"cannot {action} alert {alert_id} in status {status}")
        self.status = status
        self.action = action


class StateChanged(InvalidTransition):
    """An action meant for an earlier state of the alert (a mail's link): refused (HTTP 409)."""

    def __init__(self, alert_id: str, status: str, action: str, *, version: int, current: int) -> None:
        super().__init__(alert_id, status, action)
        self.args = (f"the {action} was meant for state version {version} of alert {alert_id}, which is now at "
                     f"{current} ({status})",)
        self.version = version
        self.current = current


class Forbidden(PermissionError):
    """The caller may not do this (an alert of another team, a global silence, someone else's silence)."""


class InvalidSilence(ValueError):
    """A silence that may not be made as asked (too long, already over); HTTP 422."""


class InvalidVerdict(ValueError):
    """A verdict on feedback the alert does not hold as negative; HTTP 422."""


@dataclass
class Alert:
    alert_id: str
    feedback_id: str
    severity: int
    status: str
    channel: str
    location: str | None
    touchpoint: str | None
    customer_key: str | None
    customer: dict[str, Any] | None
    language: str | None
    summary: str
    route: str
    team: str
    recipients: list[str]
    silence_id: str | None
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
    last_notified_at: datetime | None
    updated_at: datetime
    state_version: int = 0  # one up at every change of status: links name the state they were made for
    subjects: list[str] = field(default_factory=list)  # pseudonyms of every contact of the customer

    def move_to(self, status: str) -> None:
        """Change the status (a new state version)."""
        self.status = status
        self.state_version += 1

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def next_step(self) -> str | None:
        """The MOT-loop step that comes next (explore, offer, action, confirm), None when none does."""
        return NEXT_STEP.get(self.status)


@dataclass(slots=True)
class FeedbackLink:
    """A feedback linked to an alert: the one that raised it, a grouped one or a recovery answer."""

    feedback_id: str
    alert_id: str
    role: str  # raised | grouped | recovery_answer
    mot: int
    confidence: float
    cues: list[str]
    escalation: list[str]
    channel: str
    location: str | None
    touchpoint: str | None
    text: str | None
    rating: dict[str, Any] | None
    language: str | None
    occurred_at: datetime | None
    received_at: datetime
    linked_at: datetime
    p_negative: float | None = None  # the scorer's calibrated P(text is negative); None without text
    forced_by: str | None = None  # escalation | rating: what forced the alert whatever the text's P(negative)
    subjects: list[str] = field(default_factory=list)  # pseudonyms of every contact of its customer


VERDICTS = ("correct", "false_alarm")
"""A manager's verdict on an alerted feedback: ``correct`` (a negative moment, rightly alerted) or
``false_alarm`` (not negative)."""


@dataclass(slots=True)
class Verdict:
    """A manager's verdict on one feedback of an alert, with the feedback's text, language and
    the scorer's result the alert rested on (what ``keymoment scoring export-verdicts`` hands the
    trainer). One is current per feedback; a later verdict replaces it (``replaced_at``), kept."""

    verdict_id: str
    feedback_id: str
    alert_id: str
    verdict: str  # correct | false_alarm
    decided_by: str
    decided_at: datetime
    via: str  # api | email_link
    note: str | None
    text: str | None
    language: str | None
    score: dict[str, Any]  # mot, confidence, p_negative, forced_by, cues, escalation of the feedback link
    replaced_at: datetime | None = None


@dataclass(slots=True)
class AlertEvent:
    """One step of an alert's history: who did what when."""

    alert_id: str
    at: datetime
    action: str
    actor: str
    from_status: str | None
    to_status: str | None
    note: str | None


@dataclass(slots=True)
class Notification:
    """One decision to tell an escalation level's recipients about an alert; each recipient
    gets a mail of their own (the shared mail queue's rows, ``ref`` = ``notification_id``),
    unless a silence matched (``silence_id``): then it is kept for the record, never queued."""

    notification_id: str
    alert_id: str
    kind: str  # raised | escalation | update | reopened
    level: int
    seq: int
    recipients: list[str]
    subject: str
    silence_id: str | None
    created_at: datetime

    @property
    def suppressed(self) -> bool:
        return self.silence_id is not None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One mail of a notification as the mail queue has it."""

    recipients: tuple[str, ...]
    state: str  # pending | sending | sent | uncertain | failed
    attempts: int
    message_id: str
    last_error: str | None
    next_attempt_at: datetime | None  # when a pending one is tried next
    sent_at: datetime | None
    refused: dict[str, str]  # recipient -> its permanent refusal


# The least settled state of a notification's mails stands for it: what still needs watching.
_UNSETTLED_FIRST = ("sending", "pending", "uncertain", "failed")


def delivery_state(notification: Notification, deliveries: list[Delivery]) -> str:
    """``suppressed``, or the state of its mails: ``sent`` when every one is, else the least
    settled (``sending``, ``pending``, ``uncertain``, then ``failed``)."""
    if notification.suppressed:
        return "suppressed"
    states = {d.state for d in deliveries}
    if not states:
        return "pending"  # written, its mails not read (or not yet queued)
    return next((s for s in _UNSETTLED_FIRST if s in states), "sent")


@dataclass(frozen=True, slots=True)
class Moment:
    """A scored feedback of a known customer: their contact history."""

    customer_key: str  # the pseudonym of the customer's id, else email, else phone
    feedback_id: str
    mot: int
    channel: str
    location: str | None
    touchpoint: str | None
    at: datetime
    subjects: tuple[str, ...] = ()  # pseudonyms of every contact the feedback gave


@dataclass(frozen=True, slots=True)
class CustomerHistory:
    """A customer's last and worst moment in the history window, and how many there were."""

    last: Moment | None = None
    worst: Moment | None = None
    count: int = 0


@dataclass(slots=True)
class ManagerToken:
    """The revocable record of a manager's API token (the token itself is signed)."""

    token_id: str
    email: str
    issued_by: str
    issued_at: datetime
    expires_at: datetime
    teams: list[str] = field(default_factory=list)  # what the token allows: these teams' alerts
    revoked_at: datetime | None = None
    revoked_by: str | None = None


def summarise(text: str | None, *, channel: str, mot: int, limit: int = 80) -> str:
    """One line for a subject: the start of the customer's words, else what happened."""
    if text and text.strip():
        line = " ".join(text.split())
        return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return f"{channel} MOT {mot:+d}"


def check_ack(alert: Alert) -> None:
    if alert.status not in UNACKNOWLEDGED:
        raise InvalidTransition(alert.alert_id, alert.status, "acknowledge")


def check_step(alert: Alert, step: str) -> None:
    if step not in STEPS or alert.status not in STEPS[step]:
        raise InvalidTransition(alert.alert_id, alert.status, step)


def check_resolve(alert: Alert) -> None:
    if alert.status == AlertStatus.RESOLVED.value:
        raise InvalidTransition(alert.alert_id, alert.status, "resolve")
