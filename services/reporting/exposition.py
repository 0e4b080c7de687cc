"""The cx_* series, served from PostgreSQL state.

A background task re-reads ``kpi_counters`` (and the open alerts) every
``reporting_refresh_seconds`` and renders the text once; each scrape appends
those bytes to the registry's own metrics, so ``/metrics`` never waits for the
database and costs about the same with 5,000 label combinations as with 5.

Every replica exposes the same totals (they are read from the shared
database), so a restart does not reset them; dashboards and rules collapse
replicas with ``max without(instance, pod)`` before summing (see README).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from functools import partial

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.reporting import domain
from services.reporting import repository as repo
from services.reporting.service import LabelFolder
from shared.retry import Backoff, retry_forever

logger = logging.getLogger(__name__)

PLACE = ("channel", "location", "touchpoint")

# metric id -> (exposed name without _total, help, labels); counters keyed by place or by (channel, key)
PLACE_COUNTERS = {
    domain.FEEDBACK: ("cx_feedback", "Feedback received, by channel, location and touchpoint."),
    domain.SCORED: ("cx_mot_scored", "Feedback given a moment-of-truth score (the negative-MOT rate's denominator)."),
    domain.NEGATIVE: ("cx_negative_mot", "Feedback scored as a negative moment of truth."),
}
KEYED_COUNTERS = {
    domain.MOT: ("cx_mot_responses", "Feedback by moment-of-truth score -3..3.", "score", domain.MOT_SCORES),
    domain.NPS: ("cx_nps_responses", "NPS answers (0..10) by category: promoter 9-10, passive 7-8, detractor 0-6.",
                 "category", domain.NPS_CATEGORIES),
    domain.CSAT: ("cx_csat_responses", "CSAT answers by score 1..5 (satisfied: 4 and 5).", "score",
                  domain.CSAT_SCORES),
}
SEVERITY_COUNTERS = {
    domain.ALERTS_RAISED: ("cx_alerts_raised", "Alerts raised for negative moments of truth, by severity."),
    domain.SLA_BREACHES: ("cx_alert_sla_breaches", "Alerts not acknowledged within their SLA (once per alert)."),
}
SURVEY_COUNTERS = {
    domain.SURVEY_FUNNEL: ("cx_survey_invitations", "Survey invitations by the steps they reached: invited (the contact "
                           "rules let it go), delivered, opened, started, completed, unsubscribed.", "step",
                           domain.FUNNEL_STEPS),
    domain.SURVEY_SKIPPED: ("cx_survey_skipped", "Survey invitations the contact rules skipped, by reason.", "reason",
                            domain.SKIP_REASONS),
}
RECOVERY_NAME = "cx_recovery_answers"
RECOVERY_HELP = ("Answers to recovery surveys, by team and location of the alert, the MOT of the negative feedback "
                 "that raised it (severity -1..-3) and the answer's MOT (score -3..3): recovered when score >= 1.")
HISTOGRAMS = {
    domain.ACK: ("cx_alert_ack_seconds", "Time from an alert being raised to its first acknowledgement.",
                 domain.ACK_BUCKETS),
    domain.RESOLVE: ("cx_alert_resolve_seconds", "Time from an alert being raised to its first resolution.",
                     domain.RESOLVE_BUCKETS),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    return repr(float(value)) if value != int(value) or abs(value) >= 1e15 else f"{int(value)}.0"


def build_text(counter_rows: Iterable[asyncpg.Record | dict], open_rows: Iterable[asyncpg.Record | dict]) -> bytes:
    """The cx_* series of one database snapshot in the Prometheus text format
    (0.0.4), rendered once per snapshot. Series of the fixed label sets
    (scores, categories, severities) are always present, at 0 until counted,
    so rules that combine them never lose a side."""
    place: dict[str, list[str]] = {m: [] for m in PLACE_COUNTERS}
    keyed: dict[str, dict[tuple[str, str], float]] = {
        m: {(c, k): 0.0 for c in domain.CHANNELS for k in keys} for m, (_, _, _, keys) in KEYED_COUNTERS.items()
    }
    severity: dict[str, dict[str, float]] = {m: dict.fromkeys(domain.SEVERITIES, 0.0) for m in SEVERITY_COUNTERS}
    hist: dict[str, dict[str, dict[str, float]]] = {m: {s: {} for s in domain.SEVERITIES} for m in HISTOGRAMS}
    surveys: dict[str, dict[tuple[str, str], float]] = {m: {} for m in SURVEY_COUNTERS}
    seen_surveys: set[str] = set()
    recovery: dict[tuple[str, str, str, str], float] = {}
    seen_places: set[tuple[str, str]] = set()

    for r in counter_rows:
        metric = r["metric"]
        if metric in place:
            name = PLACE_COUNTERS[metric][0]
            place[metric].append(
                f'{name}_total{{channel="{_escape(r["channel"])}",location="{_escape(r["location"])}",'
                f'touchpoint="{_escape(r["touchpoint"])}"}} {_num(r["value"])}'
            )
        elif metric in keyed:
            keyed[metric][(r["channel"], r["key"])] = r["value"]
        elif metric in severity:
            severity[metric][r["severity"]] = r["value"]
        elif metric in hist:
            hist[metric].setdefault(r["severity"], {})[r["key"]] = r["value"]
        elif metric in surveys:
            surveys[metric][(r["survey"], r["key"])] = r["value"]
            seen_surveys.add(r["survey"])
        elif metric == domain.RECOVERY:
            recovery[(r["team"], r["location"], r["severity"], r["key"])] = r["value"]
            seen_places.add((r["team"], r["location"]))

    out: list[str] = []
    for m, (name, doc) in PLACE_COUNTERS.items():
        out += [f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter", *sorted(place[m])]
    for m, (name, doc, label, _) in KEYED_COUNTERS.items():
        out += [f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter"]
        out += [f'{name}_total{{channel="{c}",{label}="{_escape(k)}"}} {_num(v)}'
                for (c, k), v in sorted(keyed[m].items())]
    for m, (name, doc) in SEVERITY_COUNTERS.items():
        out += [f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter"]
        out += [f'{name}_total{{severity="{_escape(sev)}"}} {_num(v)}' for sev, v in severity[m].items()]
    for m, (name, doc, bounds) in HISTOGRAMS.items():
        out += [f"# HELP {name} {doc}", f"# TYPE {name} histogram"]
        for sev, cells in hist[m].items():
            cumulative = 0.0
            for bound in (*bounds, float("inf")):
                le = domain.format_le(bound)
                cumulative += cells.get(le, 0.0)
                out.append(f'{name}_bucket{{severity="{_escape(sev)}",le="{le}"}} {_num(cumulative)}')
            out.append(f'{name}_count{{severity="{_escape(sev)}"}} {_num(cumulative)}')
            out.append(f'{name}_sum{{severity="{_escape(sev)}"}} {_num(cells.get(domain.SUM_KEY, 0.0))}')
    # Per survey (and per team and location) seen, every step, reason and score combination is exposed,
    # at 0 until counted: rates and weighted means over them never lose a term.
    for m, (name, doc, label, keys) in SURVEY_COUNTERS.items():
        out += [f"# HELP {name}_total {doc}", f"# TYPE {name}_total counter"]
        out += [f'{name}_total{{survey="{_escape(sv)}",{label}="{k}"}} {_num(surveys[m].get((sv, k), 0.0))}'
                for sv in sorted(seen_surveys) for k in keys]
    out += [f"# HELP {RECOVERY_NAME}_total {RECOVERY_HELP}", f"# TYPE {RECOVERY_NAME}_total counter"]
    out += [f'{RECOVERY_NAME}_total{{team="{_escape(team)}",location="{_escape(loc)}",severity="{sev}",'
            f'score="{score}"}} {_num(recovery.get((team, loc, sev, score), 0.0))}'
            for team, loc in sorted(seen_places) for sev in domain.SEVERITIES for score in domain.MOT_SCORES]
    counts = dict.fromkeys(domain.SEVERITIES, 0)
    for r in open_rows:
        counts[str(r["severity"])] = r["n"]
    out += ["# HELP cx_alerts_open Alerts not yet resolved, by severity.", "# TYPE cx_alerts_open gauge"]
    out += [f'cx_alerts_open{{severity="{sev}"}} {_num(n)}' for sev, n in counts.items()]
    return ("\n".join(out) + "\n").encode()


class KpiRefresher:
    """Keeps the served snapshot (and the label cache) fresh from PostgreSQL."""

    def __init__(self, labels: LabelFolder, registry: CollectorRegistry, *, every: float) -> None:
        # The rendered cx_* series served at /metrics (appended to the registry's own).
        self.text: bytes = b""
        self.labels = labels
        self.every = every
        self.refreshed_at: float | None = None
        self._seconds = Gauge("keymoment_reporting_snapshot_read_seconds",
                              "Time to read and build the last cx_* snapshot.", registry=registry)
        self._age = Gauge("keymoment_reporting_snapshot_timestamp_seconds",
                          "Unix time of the cx_* snapshot served at /metrics.", registry=registry)
        self._failures = Counter("keymoment_reporting_snapshot_failures_total",
                                 "Failed reads of the cx_* snapshot.", registry=registry)

    async def refresh(self, pool: asyncpg.Pool) -> None:
        started = time.perf_counter()
        async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            counter_rows = await repo.counters(conn)
            open_rows = await repo.open_alerts(conn)
            slots = await repo.label_slots(conn)
        self.text = build_text(counter_rows, open_rows)
        self.labels.load(slots)
        self.refreshed_at = time.time()
        self._age.set(self.refreshed_at)
        self._seconds.set(time.perf_counter() - started)

    async def run(self, pool: asyncpg.Pool) -> None:
        """Refresh every ``every`` seconds; while the database is away, serve the last snapshot
        and retry with backoff (capped at 5 s, or ``every`` if longer)."""
        while True:
            await retry_forever(
                partial(self.refresh, pool), what="reading the KPI snapshot", logger=logger,
                backoff=Backoff(initial=self.every, maximum=max(self.every, 5.0)),
                on_error=lambda _: self._failures.inc(),
            )
            await asyncio.sleep(self.every)

    def ready(self) -> str | None:
        if self.refreshed_at is None:
            return "cx_* series not read from the database yet"
        stale = time.time() - self.refreshed_at
        if stale > max(30.0, 10 * self.every):
            return f"cx_* series not refreshed for {stale:.0f}s"
        return None
