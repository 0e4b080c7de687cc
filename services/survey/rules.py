"""Contact rules: whether one invitation may be sent, and when (pure; no I/O).

In order, the first that applies decides:

1. no email address mail can go to: skipped, ``no_address``;
2. the address unsubscribed: skipped, ``unsubscribed`` (it outranks every other reason);
3. the address is suppressed (bounced, complained, erased, listed by hand): ``suppressed``;
4. not a recovery survey, and the customer already had ``max_invitations`` invitations in the
   last ``window_days`` (of every survey, or of this one with scope ``survey``): ``frequency``;
5. not a recovery survey, and the customer's last invitation (any survey) is less than
   ``min_days_between`` days old: ``min_interval``;
6. the moment it would be sent falls in the quiet hours of the customer's time zone:
   deferred to their end (mode ``defer``), or skipped, ``quiet_hours`` (mode ``skip``).

Only invitations that were queued count as contacts; skipped ones never do. Recovery
surveys (asked by alerts after resolving an alert) bypass 4 and 5 only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from services.survey.schemas import ContactRules
from services.survey.settings import SurveySettings
from shared.contracts import SkipReason

Mode = Literal["defer", "skip"]


@dataclass(frozen=True)
class Rules:
    """The contact rules of one survey: its own, else the system defaults."""

    max_invitations: int
    window: timedelta
    scope: Literal["all", "survey"]
    min_interval: timedelta
    quiet: tuple[time, time] | None  # (start, end) local time; None: no quiet hours
    quiet_mode: Mode
    time_zone: ZoneInfo  # for customers whose time zone is not known

    @property
    def lookback(self) -> timedelta:
        """How far back a customer's invitations matter."""
        return max(self.window, self.min_interval)


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def parse_quiet_hours(value: str) -> tuple[time, time] | None:
    """``"21:00-08:00"`` as (start, end); empty or start == end: None."""
    value = value.strip()
    if not value:
        return None
    start, _, end = value.partition("-")
    quiet = (_hhmm(start.strip()), _hhmm(end.strip()))
    return None if quiet[0] == quiet[1] else quiet


def effective(own: ContactRules | None, settings: SurveySettings) -> Rules:
    own = own or ContactRules()
    if own.quiet_hours is not None:
        quiet = parse_quiet_hours(f"{own.quiet_hours.start}-{own.quiet_hours.end}")
        mode: Mode = own.quiet_hours.mode
    else:
        quiet, mode = parse_quiet_hours(settings.survey_quiet_hours), settings.survey_quiet_hours_mode
    return Rules(
        max_invitations=own.max_invitations or settings.survey_max_invitations,
        window=timedelta(days=own.window_days or settings.survey_frequency_window_days),
        scope=own.scope or settings.survey_frequency_scope,
        min_interval=timedelta(days=own.min_days_between if own.min_days_between is not None
                               else settings.survey_min_days_between),
        quiet=quiet,
        quiet_mode=mode,
        time_zone=ZoneInfo(own.time_zone or settings.survey_default_time_zone),
    )


def quiet_until(at: datetime, tz: ZoneInfo, quiet: tuple[time, time] | None) -> datetime | None:
    """The end of the quiet hours ``at`` falls in (an aware time), or None when it falls outside."""
    if quiet is None:
        return None
    start, end = quiet
    local = at.astimezone(tz)
    now = local.timetz().replace(tzinfo=None)
    if start < end:  # e.g. 12:00-14:00, the same day
        inside = start <= now < end
        end_day = local.date()
    else:  # e.g. 21:00-08:00, across midnight
        inside = now >= start or now < end
        end_day = local.date() + timedelta(days=1) if now >= start else local.date()
    if not inside:
        return None
    # Wall-clock end in the customer's zone (fold=0: an ambiguous or skipped hour resolves forwards).
    return datetime.combine(end_day, end, tzinfo=tz)


@dataclass(frozen=True)
class Contact:
    """An earlier invitation of the customer that was queued."""

    survey_id: str
    at: datetime


@dataclass(frozen=True)
class Decision:
    status: Literal["queued", "skipped"]
    reason: SkipReason | None = None
    send_at: datetime | None = None  # deferred: not sent before this

    @classmethod
    def skip(cls, reason: SkipReason) -> Decision:
        return cls("skipped", reason)


def decide(
    rules: Rules,
    *,
    now: datetime,
    survey_id: str,
    has_address: bool,
    suppression: str | None,
    recovery: bool,
    contacts: Sequence[Contact],
    time_zone: ZoneInfo | None = None,
    not_before: datetime | None = None,
) -> Decision:
    """The decision for one invitation (see the module docstring). ``suppression`` is the
    address's suppression reason (None: not listed); ``contacts`` the customer's queued
    invitations (any age: older ones are ignored); ``not_before`` a delay asked for
    (a trigger's), after which the quiet hours are checked."""
    if not has_address:
        return Decision.skip(SkipReason.NO_ADDRESS)
    if suppression == "unsubscribed":
        return Decision.skip(SkipReason.UNSUBSCRIBED)
    if suppression is not None:
        return Decision.skip(SkipReason.SUPPRESSED)
    if not recovery:
        since = now - rules.window
        counted = [c for c in contacts
                   if c.at > since and (rules.scope == "all" or c.survey_id == survey_id)]
        if len(counted) >= rules.max_invitations:
            return Decision.skip(SkipReason.FREQUENCY)
        if rules.min_interval and any(c.at > now - rules.min_interval for c in contacts):
            return Decision.skip(SkipReason.MIN_INTERVAL)
    send_at = not_before if not_before is not None and not_before > now else None
    quiet_end = quiet_until(send_at or now, time_zone or rules.time_zone, rules.quiet)
    if quiet_end is not None:
        if rules.quiet_mode == "skip":
            return Decision.skip(SkipReason.QUIET_HOURS)
        send_at = quiet_end
    return Decision("queued", send_at=send_at)
