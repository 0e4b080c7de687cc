"""Silences (Alertmanager style): which alerts a silence mutes, and its audit trail.

Pure data and rules; no I/O. The use cases that create and expire silences are in
``admin.py``.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.alerts.domain import Alert


@dataclass(slots=True)
class Silence:
    silence_id: str
    matchers: dict[str, Any]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    created_at: datetime
    expired_by: str | None = None
    include_escalations: bool = False  # an admin's say-so: it mutes -3 escalations beyond level 1 too

    def active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def matches(self, alert: Alert) -> bool:
        return silence_matches(self.matchers, location=alert.location, touchpoint=alert.touchpoint,
                               channel=alert.channel, severity=alert.severity, team=alert.team)

    def mutes(self, alert: Alert, *, level: int) -> bool:
        """Whether it mutes the alert's notification to escalation ``level``: a -3 alert's
        escalation beyond level 1 only if the silence says so (an admin's)."""
        if level > 1 and alert.severity == -3 and not self.include_escalations:
            return False
        return self.matches(alert)

    def applies_to_team(self, team: str) -> bool:
        """Whether it may mute alerts of ``team`` (no team matcher: every team's)."""
        return _glob_any(self.matchers.get("team"), team)

    def expire(self, now: datetime, *, by: str) -> None:
        """End it now (never before it starts; an earlier end stays)."""
        self.ends_at = max(self.starts_at + timedelta(microseconds=1), min(self.ends_at, now))
        self.expired_by = self.expired_by or by


@dataclass(slots=True)
class SilenceEvent:
    """The audit trail of a silence: created, expired (who, when, and what)."""

    silence_id: str
    at: datetime
    action: str  # created | expired
    actor: str
    detail: dict[str, Any]


def _glob_any(patterns: Any, value: str | None) -> bool:
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
