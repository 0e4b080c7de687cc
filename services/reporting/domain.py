"""What reporting counts: the KPI definitions, as plain functions (no I/O).

* NPS (0..10): promoters 9-10, passives 7-8, detractors 0-6;
  NPS = % promoters - % detractors (-100..100).
* CSAT (1..5): share of 4 and 5 among CSAT answers (0..1).
* MOT: the Carlzon moment-of-truth score -3..+3 that alerts computes for every
  feedback (``feedback.scored.v1``); mean MOT and the share of negative MOTs.
* Alerts: time from raised to first acknowledgement / first resolution, SLA
  breaches (counted once per alert), alerts not yet resolved.
* Survey funnel: per survey, the invitations at each step (invited, delivered,
  opened, started, completed, unsubscribed) and those skipped by reason;
  response rate = completed / delivered.
* Recovery effectiveness: each answer to a recovery survey against the MOT of
  the negative feedback that raised its alert (the alert's severity), per team
  and location: the share recovered to >= +1, and the mean MOT change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shared.contracts import Channel, FunnelStep, RatingScale, SkipReason

CHANNELS: tuple[str, ...] = tuple(c.value for c in Channel)
MOT_SCORES: tuple[str, ...] = tuple(str(s) for s in range(-3, 4))
NPS_CATEGORIES: tuple[str, ...] = ("promoter", "passive", "detractor")
CSAT_SCORES: tuple[str, ...] = ("1", "2", "3", "4", "5")
SEVERITIES: tuple[str, ...] = ("-1", "-2", "-3")
FUNNEL_STEPS: tuple[str, ...] = tuple(s.value for s in FunnelStep if s is not FunnelStep.SKIPPED)
SKIP_REASONS: tuple[str, ...] = tuple(r.value for r in SkipReason)
RECOVERED_FROM = 1  # a recovery answer with this MOT or better: the moment was put right

OTHER = "other"
UNKNOWN = "unknown"  # feedback without a location / touchpoint

# Time to acknowledge / resolve, in seconds: 1 min .. 1 week.
ACK_BUCKETS: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
RESOLVE_BUCKETS: tuple[float, ...] = (300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 345600, 604800)

# Metric ids in kpi_counters.metric
FEEDBACK = "feedback"
SCORED = "mot_scored"
NEGATIVE = "negative_mot"
MOT = "mot_responses"
NPS = "nps_responses"
CSAT = "csat_responses"
ALERTS_RAISED = "alerts_raised"
SLA_BREACHES = "alert_sla_breaches"
ACK = "alert_ack_seconds"
RESOLVE = "alert_resolve_seconds"
SURVEY_FUNNEL = "survey_invitations"  # survey, key = step
SURVEY_SKIPPED = "survey_skipped"  # survey, key = reason
RECOVERY = "recovery_answers"  # team, location, severity = MOT that raised the alert, key = the answer's MOT
SUM_KEY = "sum"  # kpi_counters.key of a histogram's sum; bucket keys are the upper bounds


@dataclass(frozen=True)
class Increment:
    """Add ``delta`` to one pre-aggregated series."""

    metric: str
    channel: str = ""
    location: str = ""
    touchpoint: str = ""
    severity: str = ""
    key: str = ""
    survey: str = ""
    team: str = ""
    delta: float = 1.0

    @property
    def series(self) -> tuple[str, str, str, str, str, str, str, str]:
        return (self.metric, self.channel, self.location, self.touchpoint, self.severity, self.key, self.survey,
                self.team)


def nps_category(value: int) -> str:
    if value >= 9:
        return "promoter"
    if value >= 7:
        return "passive"
    return "detractor"


def received_increments(*, channel: str, location: str, touchpoint: str, scale: str | None,
                        value: int | None) -> list[Increment]:
    """Series one received feedback adds to (location/touchpoint already folded)."""
    incs = [Increment(FEEDBACK, channel, location, touchpoint)]
    if scale == RatingScale.NPS.value and value is not None:
        incs.append(Increment(NPS, channel, key=nps_category(value)))
    elif scale == RatingScale.CSAT.value and value is not None:
        incs.append(Increment(CSAT, channel, key=str(value)))
    return incs


def scored_increments(*, channel: str, location: str, touchpoint: str, mot: int, negative: bool) -> list[Increment]:
    incs = [Increment(SCORED, channel, location, touchpoint), Increment(MOT, channel, key=str(mot))]
    if negative:
        incs.append(Increment(NEGATIVE, channel, location, touchpoint))
    return incs


def funnel_increment(*, survey: str, step: str, reason: str | None) -> Increment:
    """One invitation reaching a step (or skipped, by reason) of a survey's funnel (survey label folded)."""
    if step == FunnelStep.SKIPPED.value:
        return Increment(SURVEY_SKIPPED, survey=survey, key=reason or "unknown")
    return Increment(SURVEY_FUNNEL, survey=survey, key=step)


def recovery_increment(*, team: str, location: str, raised_mot: int, answer_mot: int) -> Increment:
    """One recovery answer (its MOT) to the alert raised by a negative MOT (team, location folded)."""
    return Increment(RECOVERY, team=team, location=location, severity=str(raised_mot), key=str(answer_mot))


def bucket_key(seconds: float, buckets: Sequence[float]) -> str:
    """The (non-cumulative) bucket an observation falls in: its smallest upper bound."""
    for bound in buckets:
        if seconds <= bound:
            return format_le(bound)
    return "+Inf"


def format_le(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def observation(metric: str, seconds: float, buckets: Sequence[float], severity: int) -> list[Increment]:
    seconds = max(seconds, 0.0)
    sev = str(severity)
    return [Increment(metric, severity=sev, key=bucket_key(seconds, buckets)),
            Increment(metric, severity=sev, key=SUM_KEY, delta=seconds)]


def merge(increments: Iterable[Increment]) -> list[Increment]:
    """Sum increments of the same series, sorted by series: every transaction locks the rows it
    adds to in this order (``service.apply``)."""
    totals: dict[tuple[str, ...], float] = {}
    for inc in increments:
        totals[inc.series] = totals.get(inc.series, 0.0) + inc.delta
    return [Increment(*series, delta=delta) for series, delta in sorted(totals.items())]


# ------------------------------------------------------------------------------------------ KPI API
def ratio(part: float, whole: float) -> float | None:
    return part / whole if whole else None


def nps(promoters: int, detractors: int, responses: int) -> float | None:
    return 100.0 * (promoters - detractors) / responses if responses else None


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (PostgreSQL's percentile_cont) of sorted values."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = math.ceil(pos)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)
