"""The alert and its recovery loop: states, allowed moves, severity words.

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


class Forbidden(PermissionError):
    """The caller may not act on this alert."""


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
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATES

    @property
    def next_step(self) -> str | None:
        """The MOT-loop step that comes next (explore, offer, action, confirm), None when none does."""
        return NEXT_STEP.get(self.status)


def summarise(text: str | None, *, channel: str, mot: int, limit: int = 80) -> str:
    """One line for a subject: the start of the customer's words, else what happened."""
    if text and text.strip():
        line = " ".join(text.split())
        return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return f"{channel} MOT {mot:+d}"


def _glob_any(patterns: Any, value: str | None) -> bool:
    import fnmatch

    if patterns is None:
        return True
    if value is None:
        return False
    items = [patterns] if isinstance(patterns, str) else list(patterns)
    return any(fnmatch.fnmatchcase(value.casefold(), str(p).casefold()) for p in items)


def silence_matches(matchers: dict[str, Any], *, location: str | None, touchpoint: str | None, channel: str,
                    severity: int, team: str) -> bool:
    """Alertmanager-style: every matcher given must match (globs, case-insensitive; severity a list)."""
    severities = matchers.get("severity")
    if severities is not None and severity not in severities:
        return False
    return (
        _glob_any(matchers.get("location"), location)
        and _glob_any(matchers.get("touchpoint"), touchpoint)
        and _glob_any(matchers.get("channel"), channel)
        and _glob_any(matchers.get("team"), team)
    )


def check_ack(alert: Alert) -> None:
    if alert.status not in UNACKNOWLEDGED:
        raise InvalidTransition(alert.alert_id, alert.status, "acknowledge")


def check_step(alert: Alert, step: str) -> None:
    if step not in STEPS or alert.status not in STEPS[step]:
        raise InvalidTransition(alert.alert_id, alert.status, step)


def check_resolve(alert: Alert) -> None:
    if alert.status == AlertStatus.RESOLVED.value:
        raise InvalidTransition(alert.alert_id, alert.status, "resolve")
