"""Use cases of reporting: fold events into facts and pre-aggregated series.

Everything here runs inside the consumer's transaction of the event, so a
series moves exactly when its fact is stored (the ConsumerRunner's
``processed_events`` row dedupes redelivered events; the facts' own keys dedupe
the same feedback or alert sent again under a new event id).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

import asyncpg

from services.reporting import domain
from services.reporting import repository as repo
from services.reporting.settings import ReportingSettings
from shared.auth import BearerAuth
from shared.clock import Clock, SystemClock
from shared.contracts import AlertRaised, AlertUpdated, FeedbackReceived, FeedbackScored, SurveyInvitationStep

if TYPE_CHECKING:
    from services.reporting.exposition import KpiRefresher

logger = logging.getLogger(__name__)

LOCATION = "location"
TOUCHPOINT = "touchpoint"
SURVEY = "survey"
TEAM = "team"


@dataclass
class LabelFolder:
    """Bounded label values for location and touchpoint.

    A raw value gets a label of its own while slots are free and keeps it for
    ever (a series must never move between labels, or Prometheus sees a counter
    reset); later values count as ``other``. The cache is filled only from
    committed rows (:meth:`load`), so a rolled-back claim is never remembered.
    """

    limits: dict[str, int]
    known: dict[tuple[str, str], str] = field(default_factory=dict)
    used: dict[str, int] = field(default_factory=dict)

    def load(self, rows: list[asyncpg.Record]) -> None:
        known = {(r["dimension"], r["value"]): r["label"] for r in rows}
        used: dict[str, int] = {}
        for dimension, _ in known:
            used[dimension] = used.get(dimension, 0) + 1
        self.known, self.used = known, used

    async def label(self, conn: asyncpg.Connection, dimension: str, value: str | None) -> str:
        if not value:
            return domain.UNKNOWN
        if (label := self.known.get((dimension, value))) is not None:
            return label
        limit = self.limits[dimension]
        if self.used.get(dimension, 0) >= limit:
            return domain.OTHER  # slots are never freed: once full, full for good
        return await repo.claim_label(conn, dimension=dimension, value=value, limit=limit, other=domain.OTHER)

    async def existing(self, conn: asyncpg.Connection, dimension: str, value: str | None) -> str:
        """The label a value has, never claiming one (no lock): ``other`` when it has none."""
        if not value:
            return domain.UNKNOWN
        if (label := self.known.get((dimension, value))) is not None:
            return label
        return await repo.label_of(conn, dimension=dimension, value=value) or domain.OTHER


def label_folder(settings: ReportingSettings) -> LabelFolder:
    return LabelFolder({LOCATION: settings.reporting_max_locations, TOUCHPOINT: settings.reporting_max_touchpoints,
                        SURVEY: settings.reporting_max_surveys, TEAM: settings.reporting_max_teams})


@dataclass(frozen=True)
class Context:
    """Reporting's components, built whole in ``create_app``."""

    settings: ReportingSettings
    labels: LabelFolder
    refresher: KpiRefresher  # the cx_* snapshot served at /metrics
    auth: BearerAuth  # the KPI and erasure APIs
    clock: Clock = field(default_factory=SystemClock)


@dataclass
class Batch:
    """A consumer transaction's new events, by kind (offset order within each)."""

    received: list[FeedbackReceived] = field(default_factory=list)
    scored: list[tuple[FeedbackScored, datetime]] = field(default_factory=list)  # with each event's time
    alerts: list[AlertRaised | AlertUpdated] = field(default_factory=list)
    steps: list[SurveyInvitationStep] = field(default_factory=list)  # survey funnels
    from_survey: set[str] = field(default_factory=set)  # ids of the received feedback survey published


async def apply(conn: asyncpg.Connection, ctx: Context, batch: Batch) -> None:
    """Fold a transaction's events into facts and series, taking every row lock in one order:

    1. label slots (one advisory lock per dimension, location before touchpoint, values sorted);
    2. feedback facts: an advisory lock per feedback id of the batch, received and scored alike, in id-hash
       order, before either upsert touches a row (two replicas holding received and scored events of the
       same feedback would otherwise lock the same rows in two passes, in opposite orders);
    3. alerts, likewise per alert id;
    4. survey funnel steps, then the recovery answers the batch completes (their rows in key order);
    5. every series the batch moves, merged and sorted, in one statement.

    The labels a recovery answer is counted under (its alert's team and location) are looked up, never
    claimed, after phase 1: a team gets its label when its alert is raised (phase 1 of that batch), a
    location when feedback there is counted; one that never got one counts as ``other``.

    Each transaction goes through these phases in this order and, within a phase, in sorted order, so
    two replicas wait for each other but never deadlock (tests/integration/reporting/test_replicas.py)."""
    places = sorted({(LOCATION, v) for v in _values(batch, "location")}
                    | {(TOUCHPOINT, v) for v in _values(batch, "touchpoint")}
                    | {(SURVEY, step.survey_id) for step in batch.steps}
                    | {(TEAM, a.team) for a in batch.alerts if isinstance(a, AlertRaised) and a.team})
    labels = {key: await ctx.labels.label(conn, *key) for key in places}

    await repo.lock_keys(conn, repo.FEEDBACK_LOCKS,
                         [fb.id for fb in batch.received] + [s.feedback_id for s, _ in batch.scored])
    increments = await _feedback_received(conn, batch.received, labels)
    increments += await _feedback_scored(conn, batch.scored, labels)
    answers = {fb.id: fb.survey.recovery_for_alert_id for fb in batch.received
               if fb.survey and fb.survey.recovery_for_alert_id and fb.id in batch.from_survey}
    await repo.add_recovery_answers(conn, {k: answers[k] for k in sorted(answers)})

    await repo.lock_keys(conn, repo.ALERT_LOCKS, [a.alert_id for a in batch.alerts])
    for alert in batch.alerts:  # in order: either kind may come first, the newest snapshot wins
        if isinstance(alert, AlertRaised):
            row = await repo.upsert_alert_raised(conn, alert)
        else:
            row = await repo.upsert_alert_updated(conn, alert)
        increments += await _count_alert(conn, row)

    increments += await _survey_steps(conn, batch.steps, labels)
    increments += await _recovery(conn, ctx, feedback_ids=sorted(set(answers) | {s.feedback_id for s, _ in batch.scored}),
                                  alert_ids=sorted({a.alert_id for a in batch.alerts if isinstance(a, AlertRaised)}))
    await repo.add_to_counters(conn, domain.merge(increments))


def _values(batch: Batch, name: str) -> set[str]:
    return ({v for fb in batch.received if (v := getattr(fb, name))}
            | {v for s, _ in batch.scored if (v := getattr(s, name))})


def _place(labels: dict[tuple[str, str], str], location: str | None, touchpoint: str | None) -> tuple[str, str]:
    return (labels[(LOCATION, location)] if location else domain.UNKNOWN,
            labels[(TOUCHPOINT, touchpoint)] if touchpoint else domain.UNKNOWN)


async def _feedback_received(conn: asyncpg.Connection, feedback: list[FeedbackReceived],
                             labels: dict[tuple[str, str], str]) -> list[domain.Increment]:
    """Received feedback: facts in one statement; the series they move."""
    first: dict[str, FeedbackReceived] = {}
    for fb in feedback:  # the same feedback twice in a batch (re-sent under a new event id): once
        first.setdefault(fb.id, fb)
    new = await repo.add_received(conn, [first[k] for k in sorted(first)])
    increments = []
    for fb in first.values():
        if fb.id not in new:
            logger.info("feedback already counted", extra={"feedback_id": fb.id})
            continue
        location, touchpoint = _place(labels, fb.location, fb.touchpoint)
        increments += domain.received_increments(
            channel=fb.channel.value, location=location, touchpoint=touchpoint,
            scale=fb.rating.scale.value if fb.rating else None, value=fb.rating.value if fb.rating else None,
        )
    return increments


async def _feedback_scored(conn: asyncpg.Connection, scored: list[tuple[FeedbackScored, datetime]],
                           labels: dict[tuple[str, str], str]) -> list[domain.Increment]:
    """Scores (each with its event time), as :func:`_feedback_received`."""
    first: dict[str, tuple[FeedbackScored, datetime]] = {}
    for item in scored:
        first.setdefault(item[0].feedback_id, item)
    new = await repo.add_scored(conn, [first[k] for k in sorted(first)])
    increments = []
    for s, _ in first.values():
        if s.feedback_id not in new:
            logger.info("score already counted", extra={"feedback_id": s.feedback_id})
            continue
        location, touchpoint = _place(labels, s.location, s.touchpoint)
        increments += domain.scored_increments(
            channel=s.channel.value, location=location, touchpoint=touchpoint, mot=s.mot, negative=s.negative,
        )
    return increments


async def _survey_steps(conn: asyncpg.Connection, steps: list[SurveyInvitationStep],
                        labels: dict[tuple[str, str], str]) -> list[domain.Increment]:
    """Invitation funnel steps: each (invitation, step) counted once however often it arrives."""
    first: dict[tuple[str, str], SurveyInvitationStep] = {}
    for step in steps:
        first.setdefault((step.invitation_id, step.step.value), step)
    new = await repo.add_funnel_steps(conn, [first[k] for k in sorted(first)])
    return [domain.funnel_increment(survey=labels[(SURVEY, step.survey_id)], step=step.step.value,
                                    reason=step.reason.value if step.reason else None)
            for key, step in first.items() if key in new]


async def _recovery(conn: asyncpg.Connection, ctx: Context, *, feedback_ids: list[str],
                    alert_ids: list[str]) -> list[domain.Increment]:
    """The recovery answers these feedback or alerts complete (answer scored, alert raised), once each,
    under the labels their alert's team and location already have."""
    if not feedback_ids and not alert_ids:
        return []
    increments = []
    for row in await repo.settle_recovery_answers(conn, feedback_ids=feedback_ids, alert_ids=alert_ids):
        team = await ctx.labels.existing(conn, TEAM, row["team"])
        location = await ctx.labels.existing(conn, LOCATION, row["location"])
        increments.append(domain.recovery_increment(team=team, location=location, raised_mot=row["raised_mot"],
                                                    answer_mot=row["mot"]))
    return increments


async def _count_alert(conn: asyncpg.Connection, row: asyncpg.Record) -> list[domain.Increment]:
    """What this alert newly shows, once per alert: raised, first acknowledgement, first resolution,
    first SLA breach (marked on its row; the series are added by the caller)."""
    incs: list[domain.Increment] = []
    severity = str(row["severity"])
    if row["inserted"]:  # raised/updated can arrive in either order: whichever creates the row counts it
        incs.append(domain.Increment(domain.ALERTS_RAISED, severity=severity))
    ack = row["acknowledged_at"] is not None and not row["ack_counted"]
    resolve = row["resolved_at"] is not None and not row["resolve_counted"]
    breach = row["sla_breached"] and not row["breach_counted"]
    if ack:
        incs += domain.observation(domain.ACK, (row["acknowledged_at"] - row["raised_at"]).total_seconds(),
                                   domain.ACK_BUCKETS, row["severity"])
    if resolve:
        incs += domain.observation(domain.RESOLVE, (row["resolved_at"] - row["raised_at"]).total_seconds(),
                                   domain.RESOLVE_BUCKETS, row["severity"])
    if breach:
        incs.append(domain.Increment(domain.SLA_BREACHES, severity=severity))
    if ack or resolve or breach:
        await repo.mark_counted(conn, row["alert_id"], ack=ack, resolve=resolve, breach=breach)
    return incs


# ------------------------------------------------------------------------------------------ KPI API
async def kpi_report(pool: asyncpg.Pool, *, start: datetime, end: datetime, group_by: str | None) -> list[dict]:
    """KPIs of [start, end) from the stored facts, one row per group (or one total)."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        fb_rows = await repo.feedback_kpis(conn, start=start, end=end, group_by=group_by)
        alert_rows = await repo.alert_kpis(conn, start=start, end=end, group_by=group_by)
    feedback = {r["grp"]: r for r in fb_rows}
    alerts = {r["grp"]: r for r in alert_rows}
    groups = sorted(feedback.keys() | alerts.keys(), key=lambda g: (g is not None, g or ""))
    if group_by is None and not groups:
        groups = [None]
    rows = []
    for g in groups:
        f = feedback.get(g)
        a = alerts.get(g)

        def fv(name: str, default: int = 0, f=f) -> int:
            return f[name] if f is not None else default

        def av(name: str, default=0, a=a):
            return a[name] if a is not None else default

        rows.append({
            "group": g,
            "feedback": fv("feedback"),
            "nps": domain.nps(fv("promoters"), fv("detractors"), fv("nps_responses")),
            "nps_responses": fv("nps_responses"),
            "promoters": fv("promoters"),
            "passives": fv("passives"),
            "detractors": fv("detractors"),
            "csat": domain.ratio(fv("csat_satisfied"), fv("csat_responses")),
            "csat_responses": fv("csat_responses"),
            "mot_mean": f["mot_mean"] if f is not None else None,
            "scored": fv("scored"),
            "negative": fv("negative"),
            "negative_rate": domain.ratio(fv("negative"), fv("scored")),
            "alerts_raised": av("alerts_raised"),
            "alerts_open": av("alerts_open"),
            "sla_breaches": av("sla_breaches"),
            "ack_p50_seconds": av("ack_p50", None),
            "ack_p90_seconds": av("ack_p90", None),
            "resolve_p50_seconds": av("resolve_p50", None),
            "resolve_p90_seconds": av("resolve_p90", None),
        })
    return rows
