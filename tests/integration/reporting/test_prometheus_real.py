"""The proof against the real thing: the Debian ``prometheus`` binary scrapes a
running reporting service (every second) with our rules loaded; known events go
through the real broker; then every dashboard panel query, every dashboard
variable and every recording rule is evaluated through Prometheus' HTTP API and
must return data, and NPS / CSAT / negative-MOT rate must equal the values
computed by hand.

The events are produced to the broker directly (``feedback.received.v1``,
``feedback.scored.v1`` as alerts would score them, ``alert.*``), so the expected
MOT scores are known exactly rather than depending on the text scorer.

Counting exactly through ``increase()``: a counter series that first appears
with a non-zero value loses that value to ``increase()`` (Prometheus cannot
know it started at 0). So a warm-up feedback per place creates the place series
first; the known input follows, and ``$__range`` covers only the time after the
warm-up was scraped. NPS / CSAT / MOT series exist from start-up at 0.

The survey funnel and recovery series get the same treatment: a warm-up
invitation and a recovery answer (to an alert raised, acknowledged and resolved
then) create them; in the window, more funnel steps arrive, and an alert is raised
whose two recovery answers were scored during the warm-up, so the window's
recovery answers add no feedback to the window's MOT, NPS and CSAT figures.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from keymoment.devstack.ports import free_port
from services.reporting import dashboards
from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.contracts import AlertRaised, AlertUpdated, FeedbackReceived, SurveyInvitationStep
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_RECEIVED, SURVEY_INVITATION, Envelope, event_source
from tests.integration.reporting.support import (
    alert_raised, alert_updated, new_id, publish, publisher, received, scored,
)
from tests.support.services import running, wait_until

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy" / "prometheus" / "rules" / "cx.yml"

pytestmark = [
    pytest.mark.integration,
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)"),
]

PLACES = [("kiosk", "store-1"), ("web", "store-2"), ("email", "北京国贸店")]
WARMUP_PER_PLACE = 10
# (channel, location, rating scale, rating value, MOT score)
KNOWN = [
    ("kiosk", "store-1", "nps", 10, 3), ("kiosk", "store-1", "nps", 9, 2), ("kiosk", "store-1", "nps", 9, 1),
    ("kiosk", "store-1", "nps", 7, 0), ("kiosk", "store-1", "nps", 3, -2), ("kiosk", "store-1", "csat", 1, -3),
    ("kiosk", "store-1", "csat", 5, 2),
    ("web", "store-2", "nps", 10, 2), ("web", "store-2", "nps", 2, -1), ("web", "store-2", "nps", 0, -3),
    ("email", "北京国贸店", "csat", 5, 1), ("email", "北京国贸店", "csat", 4, 0), ("email", "北京国贸店", "csat", 4, 1),
    ("email", "北京国贸店", "csat", 2, -2),
]
# By hand: NPS answers 10,9,9,7,3 (kiosk) and 10,2,0 (web): promoters 4, detractors 3 of 8 -> 100 * 1/8
EXPECTED_NPS = 12.5
EXPECTED_NPS_BY_CHANNEL = {"kiosk": 40.0, "web": -100 / 3}
EXPECTED_CSAT = 4 / 6  # 1,5 (kiosk) and 5,4,4,2 (email): four of six are 4-5
EXPECTED_NEGATIVE = 5 / 14  # MOT < 0: two at kiosk, two at web, one by email
EXPECTED_NEGATIVE_BY_LOCATION = {"store-1": 2 / 7, "store-2": 2 / 3, "北京国贸店": 1 / 4}
EXPECTED_MOT_MEAN = 1 / 14
# The recovery answers counted in the window: +2 and -1 to an alert raised at -2 (retail-east, store-9).
EXPECTED_RECOVERED = 1 / 2
EXPECTED_MOT_CHANGE = ((2 + 2) + (-1 + 2)) / 2
EXPECTED_RESPONSE_RATE = 2 / 3  # post-visit in the window: 3 delivered, 2 completed


def step(invitation_id: str, name: str, *, reason: str | None = None, at: datetime) -> Envelope:
    data = SurveyInvitationStep(invitation_id=invitation_id, survey_id="post-visit", step=name, reason=reason, at=at)
    return Envelope.new(SURVEY_INVITATION, data, source=event_source("survey"), key=invitation_id)


def recovery_answer(fid: str, alert_id: str, mot: int, *, at: datetime) -> list[Envelope]:
    data = FeedbackReceived(id=fid, channel="survey", location="store-9", touchpoint="checkout", received_at=at,
                            rating={"scale": "mot", "value": mot}, source="survey",
                            survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id})
    return [Envelope.new(FEEDBACK_RECEIVED, data, source=event_source("survey"), key=fid),
            scored(fid, mot, channel="survey", location="store-9", at=at)]


def recovery_alert(alert_id: str, *, at: datetime) -> list[Envelope]:
    """Raised at -2 for retail-east at store-9, acknowledged after 2 minutes and resolved after 5."""
    data = AlertRaised(alert_id=alert_id, feedback_id=f"fb-{alert_id}", severity=-2, channel="kiosk",
                       location="store-9", touchpoint="checkout", team="retail-east", raised_at=at)
    resolved = AlertUpdated(alert_id=alert_id, status="resolved", severity=-2, channel="kiosk", location="store-9",
                            touchpoint="checkout", at=at + timedelta(seconds=300), raised_at=at,
                            acknowledged_at=at + timedelta(seconds=120), resolved_at=at + timedelta(seconds=300))
    return [Envelope.new(ALERT_RAISED, data, source=event_source("alerts"), key=f"alert:{alert_id}"),
            Envelope.new(ALERT_UPDATED, resolved, source=event_source("alerts"), key=f"alert:{alert_id}")]


class Prometheus:
    def __init__(self, workdir: Path, target: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
        for group in rules["groups"]:
            group.pop("interval", None)  # evaluate every rule each second (the global interval) in this test
        (workdir / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True), encoding="utf-8")
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "900ms"},
            "rule_files": [str(workdir / "rules.yml")],
            "scrape_configs": [{"job_name": "reporting", "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
        self.log = workdir / "prometheus.log"
        self.args = [
            "prometheus", f"--config.file={workdir / 'prometheus.yml'}", f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn",
        ]

    @contextlib.contextmanager
    def run(self):
        with self.log.open("wb") as log:
            proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT)
            try:
                yield self
            finally:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    async def query(self, http: httpx.AsyncClient, expr: str, at: float | None = None) -> list[dict]:
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        response = await http.get(f"{self.url}/api/v1/query", params=params)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}\n{body}"
        return body["data"]["result"]

    async def scalar(self, http: httpx.AsyncClient, expr: str, at: float | None = None) -> float | None:
        result = await self.query(http, expr, at)
        return float(result[0]["value"][1]) if result else None


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for name, build in dashboards.DASHBOARDS.items():
        board = build()
        for panel in board["panels"]:
            for t in panel["targets"]:
                out.append((name, panel["title"], t["expr"]))
    return out


def variable_queries() -> list[str]:
    return [v["query"]["query"] for build in dashboards.DASHBOARDS.values() for v in build()["templating"]["list"]]


def substitute(expr: str, range_ms: int) -> str:
    return (expr.replace("$__rate_interval", "15s").replace("$__range", f"{range_ms}ms")
            .replace("$__interval", "1s").replace("$channel", ".*").replace("$location", ".*"))


def recorded_names() -> list[str]:
    rules = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [r["record"] for g in rules["groups"] for r in g["rules"] if "record" in r]


async def test_every_panel_and_rule_against_a_real_prometheus(service_env, kafka_bootstrap, tmp_path):
    s = ReportingSettings(**{**service_env, "kafka_consumer_group": f"reporting-{uuid.uuid4().hex[:8]}"},
                          reporting_refresh_seconds=0.2)
    async with running(create_app(s)) as app, publisher(kafka_bootstrap) as pub, httpx.AsyncClient(timeout=10) as http:
        prom = Prometheus(tmp_path, f"127.0.0.1:{app.port}")
        with prom.run():
            async def ready() -> bool:
                try:
                    return (await http.get(f"{prom.url}/-/ready")).status_code == 200
                except httpx.HTTPError:
                    return False
            await wait_until(ready, timeout=20, what="prometheus ready")

            async def scraped_nps_at_zero() -> bool:
                return await prom.scalar(http, "count(cx_nps_responses_total)") == 18.0
            await wait_until(scraped_nps_at_zero, timeout=15, what="first scrape of reporting")

            # warm-up: the place series come into existence (see the module docstring)
            warm = []
            for channel, location in PLACES:
                for _ in range(WARMUP_PER_PLACE):
                    fid = new_id("warm")
                    warm += [received(fid, channel=channel, location=location, text="warm-up"),
                             scored(fid, -3, channel=channel, location=location)]
            # the survey and recovery series: an invitation's steps, a recovery answer counted (its alert
            # raised, acknowledged, resolved), and two answers to an alert not raised yet (counted in the window)
            early = datetime.now(UTC) - timedelta(minutes=30)
            warm_invitation, warm_alert, window_alert = new_id("inv"), new_id("al"), new_id("al")
            warm += [step(warm_invitation, name, at=early) for name in ("invited", "delivered", "completed")]
            warm += [*recovery_alert(warm_alert, at=early), *recovery_answer(new_id("rec"), warm_alert, 1, at=early)]
            warm += recovery_answer(new_id("rec"), window_alert, 2, at=early)
            warm += recovery_answer(new_id("rec"), window_alert, -1, at=early)
            await publish(pub, s, warm)
            n_warm = len(PLACES) * WARMUP_PER_PLACE  # all -3
            n_recovery_negative = 1

            async def warm_visible() -> bool:
                return (await prom.scalar(http, "sum(cx_mot_scored_total)") == n_warm + 3
                        and await prom.scalar(http, "sum(cx_negative_mot_total)") == n_warm + n_recovery_negative
                        and await prom.scalar(http, "sum(cx_recovery_answers_total)") == 1
                        and await prom.scalar(http, "sum(cx_survey_invitations_total)") == 3)
            await wait_until(warm_visible, timeout=20, what="warm-up scraped")
            # the scrape that first saw the warm-up: $__range starts just before it, so the window's first
            # sample holds the warm-up and none of the known input (published after it)
            warm_at = await prom.scalar(http, "max(timestamp(cx_mot_scored_total))") - 0.001

            now = datetime.now(UTC)
            events = []
            for channel, location, scale, value, mot in KNOWN:
                fid = new_id()
                events += [received(fid, channel=channel, location=location, rating=(scale, value), at=now),
                           scored(fid, mot, channel=channel, location=location, at=now)]
            a, b = new_id("al"), new_id("al")
            raised_a, raised_b = now - timedelta(seconds=900), now - timedelta(seconds=4000)
            invitations = [new_id("inv") for _ in range(3)]
            events += [step(i, name, at=now) for i in invitations for name in ("invited", "delivered")]
            events += [step(i, "completed", at=now) for i in invitations[:2]]
            events += [step(new_id("inv"), "skipped", reason="frequency", at=now)]
            events += recovery_alert(window_alert, at=now - timedelta(seconds=600))
            events += [
                alert_raised(a, severity=-3, at=raised_a),
                alert_updated(a, "acknowledged", severity=-3, raised_at=raised_a, at=raised_a + timedelta(seconds=90),
                              acknowledged_at=raised_a + timedelta(seconds=90)),
                alert_updated(a, "resolved", severity=-3, raised_at=raised_a, at=raised_a + timedelta(seconds=600),
                              acknowledged_at=raised_a + timedelta(seconds=90),
                              resolved_at=raised_a + timedelta(seconds=600)),
                alert_raised(b, severity=-2, at=raised_b),
                alert_updated(b, "acknowledged", raised_at=raised_b, at=raised_b + timedelta(seconds=3000),
                              acknowledged_at=raised_b + timedelta(seconds=3000), sla_breached=True),
            ]
            await publish(pub, s, events)

            async def known_visible() -> bool:
                return (await prom.scalar(http, "sum(cx_mot_scored_total)") == n_warm + 3 + len(KNOWN)
                        and await prom.scalar(http, "sum(cx_alert_ack_seconds_count)") == 2 + 2
                        and await prom.scalar(http, "sum(cx_alert_resolve_seconds_count)") == 1 + 2
                        and await prom.scalar(http, "sum(cx_csat_responses_total)") == 6
                        and await prom.scalar(http, "sum(cx_recovery_answers_total)") == 3
                        and await prom.scalar(http, "sum(cx_survey_skipped_total)") == 1)
            await wait_until(known_visible, timeout=20, what="known input scraped")

            # recording rules catch up one evaluation after the scrape
            async def rules_caught_up() -> bool:
                return await prom.scalar(http, "cx:nps:1h") == pytest.approx(EXPECTED_NPS)
            await wait_until(rules_caught_up, timeout=15, what="cx:nps:1h evaluated on the known input")

            # $__range starts after the warm-up was scraped and must hold a few scrapes for rate() panels
            async def enough_scrapes() -> bool:
                return (await prom.scalar(http, 'max(timestamp(up{job="reporting"}))') or 0) >= warm_at + 6
            await wait_until(enough_scrapes, timeout=15, what="six scrapes after the warm-up")
            at = time.time()
            range_ms = int((at - warm_at) * 1000)  # the window starts just after warm_at, before the known input
            failures = []
            for board, title, expr in panel_queries():
                result = await prom.query(http, substitute(expr, range_ms), at)
                if not result:
                    failures.append(f"{board} / {title}: no data for {substitute(expr, range_ms)}")
            for expr in variable_queries():
                metric_selector = expr[len("label_values("):-1].rsplit(",", 1)
                response = await http.get(f"{prom.url}/api/v1/label/{metric_selector[1].strip()}/values",
                                          params={"match[]": substitute(metric_selector[0], range_ms)})
                if not response.json()["data"]:
                    failures.append(f"variable {expr}: no values")
            for name in recorded_names():
                if not await prom.query(http, name, at):
                    failures.append(f"recording rule {name}: no data")
            if failures:
                groups = (await http.get(f"{prom.url}/api/v1/rules")).json()["data"]["groups"]
                failures += [f"rule {r.get('name')}: {r.get('lastError')}" for g in groups for r in g["rules"]
                             if r.get("lastError")]
            assert not failures, "\n".join(failures)

            # the hand-computed values, through the dashboards' own queries ...
            overview = {p["title"]: p["targets"][0]["expr"] for p in dashboards.overview()["panels"]}

            async def panel(title: str) -> float:
                return await prom.scalar(http, substitute(overview[title], range_ms), at)
            assert await panel("NPS") == pytest.approx(EXPECTED_NPS)
            assert await panel("CSAT (share of 4-5)") == pytest.approx(EXPECTED_CSAT)
            assert await panel("Negative-MOT rate") == pytest.approx(EXPECTED_NEGATIVE)
            # the warm-up's -3 scores bend the extrapolation of one series slightly
            assert await panel("Mean moment of truth") == pytest.approx(EXPECTED_MOT_MEAN, abs=0.05)
            assert round(await panel("SLA breaches")) == 1  # increase() extrapolates to the window edges
            # ... and through the recording rules
            assert await prom.scalar(http, "cx:nps:1h", at) == pytest.approx(EXPECTED_NPS)
            assert await prom.scalar(http, "cx:nps:7d", at) == pytest.approx(EXPECTED_NPS)
            for channel, nps in EXPECTED_NPS_BY_CHANNEL.items():
                assert await prom.scalar(http, f'channel:cx_nps:1h{{channel="{channel}"}}', at) == pytest.approx(nps)
            assert await prom.scalar(http, "cx:csat_satisfied_ratio:1d", at) == pytest.approx(EXPECTED_CSAT)
            assert await prom.scalar(http, "cx:negative_mot_ratio:1h", at) == pytest.approx(EXPECTED_NEGATIVE)
            for location, rate in EXPECTED_NEGATIVE_BY_LOCATION.items():
                got = await prom.scalar(http, f'location:cx_negative_mot_ratio:1h{{location="{location}"}}', at)
                assert got == pytest.approx(rate), location
            assert await prom.scalar(http, 'sum(cx_alerts_open)', at) == 1.0
            assert await panel("Recovery: share recovered to MOT ≥ +1, by team") == pytest.approx(EXPECTED_RECOVERED)
            assert await panel("Recovery: mean MOT change, by location") == pytest.approx(EXPECTED_MOT_CHANGE)
            assert await prom.scalar(http, 'team:cx_recovery_recovered_ratio:1d{team="retail-east"}', at
                                     ) == pytest.approx(EXPECTED_RECOVERED)
            assert await prom.scalar(http, 'location:cx_recovery_mot_change_mean:1d{location="store-9"}', at
                                     ) == pytest.approx(EXPECTED_MOT_CHANGE)
            assert await prom.scalar(http, 'survey:cx_survey_response_rate:1d{survey="post-visit"}', at
                                     ) == pytest.approx(EXPECTED_RESPONSE_RATE)
            p50 = await prom.scalar(http, "cx:alert_ack_seconds:p50_1d", at)
            assert p50 is not None and not math.isnan(p50) and 60 < p50 <= 3600
