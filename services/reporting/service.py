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


def label_folder(settings: ReportingSettings) -> LabelFolder:
    return LabelFolder({LOCATION: settings.reporting_max_locations, TOUCHPOINT: settings.reporting_max_touchpoints,
                        SURVEY: settings.reporting_max_surveys, TEAM: settings.reporting_max_teams})


@dataclass(frozen=True)
class Context:
    """Reporting's components, built whole in ``create_app``."""

    settings: ReportingSettings
    labels: LabelFolder
    refresher: KpiRefresher  # the cx_* snapshot served at /metrics
    auth: BearerAuth  # the KPI API


async def _place(conn: asyncpg.Connection, ctx: Context, location: str | None, touchpoint: str | None) -> tuple[str, str]:
    return (await ctx.labels.label(conn, LOCATION, location), await ctx.labels.label(conn, TOUCHPOINT, touchpoint))


async def feedback_received(conn: asyncpg.Connection, ctx: Context, feedback: list[FeedbackReceived]) -> None:
    """A batch of received feedback: facts in one statement, every series it moves in another."""
    first: dict[str, FeedbackReceived] = {}
    for fb in feedback:  # the same feedback twice in a batch (re-sent under a new event id): once
        first.setdefault(fb.id, fb)
    new = await repo.add_received(conn, list(first.values()))
    increments = []
    for fb in first.values():
        if fb.id not in new:
            logger.info("feedback already counted", extra={"feedback_id": fb.id})
            continue
        location, touchpoint = await _place(conn, ctx, fb.location, fb.touchpoint)
        increments += domain.received_increments(
            channel=fb.channel.value, location=location, touchpoint=touchpoint,
            scale=fb.rating.scale.value if fb.rating else None, value=fb.rating.value if fb.rating else None,
        )
    recovery = {fb.id: fb.survey.recovery_for_alert_id for fb in first.values()
                if fb.id in new and fb.survey and fb.survey.recovery_for_alert_id}
    if recovery:
        await repo.add_recovery_answers(conn, recovery)
        increments += await _recovery(conn, ctx, feedback_ids=list(recovery))
    await repo.add_to_counters(conn, domain.merge(increments))


async def feedback_scored(conn: asyncpg.Connection, ctx: Context, scored: list[tuple[FeedbackScored, datetime]]) -> None:
    """A batch of scores (each with its event time), as :func:`feedback_received`."""
    first: dict[str, tuple[FeedbackScored, datetime]] = {}
    for item in scored:
        first.setdefault(item[0].feedback_id, item)
    new = await repo.add_scored(conn, list(first.values()))
    increments = []
    for s, _ in first.values():
        if s.feedback_id not in new:
            logger.info("score already counted", extra={"feedback_id": s.feedback_id})
            continue
        location, touchpoint = await _place(conn, ctx, s.location, s.touchpoint)
        increments += domain.scored_increments(
            channel=s.channel.value, location=location, touchpoint=touchpoint, mot=s.mot, negative=s.negative,
        )
    if new:
        increments += await _recovery(conn, ctx, feedback_ids=sorted(new))
    await repo.add_to_counters(conn, domain.merge(increments))


async def alert_raised(conn: asyncpg.Connection, ctx: Context, raised: AlertRaised) -> None:
    row = await repo.upsert_alert_raised(conn, raised)
    await _count_alert(conn, row)
    await repo.add_to_counters(conn, domain.merge(await _recovery(conn, ctx, alert_ids=[raised.alert_id])))


async def _recovery(conn: asyncpg.Connection, ctx: Context, *, feedback_ids: list[str] | None = None,
                    alert_ids: list[str] | None = None) -> list[domain.Increment]:
    """The recovery answers these feedback or alerts complete (answer scored, alert raised), once each."""
    increments = []
    for row in await repo.settle_recovery_answers(conn, feedback_ids=feedback_ids or (), alert_ids=alert_ids or ()):
        team = await ctx.labels.label(conn, TEAM, row["team"])
        location = await ctx.labels.label(conn, LOCATION, row["location"])
        increments.append(domain.recovery_increment(team=team, location=location, raised_mot=row["raised_mot"],
                                                    answer_mot=row["mot"]))
    return increments


async def survey_steps(conn: asyncpg.Connection, ctx: Context, steps: list[SurveyInvitationStep]) -> None:
    """A batch of invitation funnel steps: each (invitation, step) counted once."""
    new = await repo.add_funnel_steps(conn, steps)
    increments = []
    for step in steps:
        if (step.invitation_id, step.step.value) not in new:
            continue
        new.discard((step.invitation_id, step.step.value))  # the same step twice in one batch: once
        survey = await ctx.labels.label(conn, SURVEY, step.survey_id)
        increments.append(domain.funnel_increment(survey=survey, step=step.step.value,
                                                  reason=step.reason.value if step.reason else None))
    await repo.add_to_counters(conn, domain.merge(increments))


async def alert_updated(conn: asyncpg.Connection, ctx: Context, updated: AlertUpdated) -> None:
    row = await repo.upsert_alert_updated(conn, updated)
    await _count_alert(conn, row)


async def _count_alert(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    """Count what this alert newly shows, once per alert: raised, first
    acknowledgement, first resolution, first SLA breach."""
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
    await repo.add_to_counters(conn, domain.merge(incs))


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
