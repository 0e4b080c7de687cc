"""The whole chain with the real services: intake accepts feedback, alerts
scores it (feedback.scored.v1) and raises / acknowledges / resolves an alert
(alert.raised.v1, alert.updated.v1), reporting counts all of it."""

from __future__ import annotations

import uuid

import httpx
import pytest

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from tests.integration.alerts.support import alerts_app, settings as alerts_settings, smtp_server
from tests.integration.reporting.support import ADMIN, scrape, total, value
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

FEEDBACK = [
    {"channel": "kiosk", "rating": {"scale": "mot", "value": -3}, "location": "北京国贸店", "touchpoint": "checkout",
     "text": "太差了！被多扣了钱还没人管，我要投诉！"},
    {"channel": "survey", "rating": {"scale": "nps", "value": 10}, "location": "store-2", "touchpoint": "checkout",
     "text": "Outstanding service, the staff went out of their way to help me!",
     "survey": {"survey_id": "s1"}},
    {"channel": "web", "rating": {"scale": "csat", "value": 5}, "location": "store-2", "touchpoint": "delivery"},
]


async def test_intake_alerts_reporting(service_env):
    reporting_settings = ReportingSettings(
        **{**service_env, "kafka_consumer_group": f"reporting-{uuid.uuid4().hex[:8]}"}, reporting_refresh_seconds=0.2)
    intake_settings = IntakeSettings(**service_env)
    with smtp_server() as smtp:
        async with running(create_intake(intake_settings)) as intake, \
                alerts_app(alerts_settings(service_env, smtp)) as alerts, \
                running(create_reporting(reporting_settings)) as reporting:
            key = {"X-API-Key": intake_settings.dev_api_key.get_secret_value()}
            async with httpx.AsyncClient(base_url=intake.url, headers=key) as http:
                for item in FEEDBACK:
                    assert (await http.post("/v1/feedback", json=item)).status_code == 202

            async def scored_and_raised() -> bool:
                m = await scrape(reporting.url)
                return total(m, "cx_mot_scored_total") == 3 and total(m, "cx_alerts_raised_total") == 1
            await wait_until(scored_and_raised, timeout=30, what="3 scored feedback and 1 alert in reporting")

            async with httpx.AsyncClient(base_url=alerts.url, headers=ADMIN) as http:
                (alert,) = (await http.get("/v1/alerts")).json()["alerts"]
                assert (await http.post(f"/v1/alerts/{alert['alert_id']}/ack")).status_code == 200
                assert (await http.post(f"/v1/alerts/{alert['alert_id']}/resolve")).status_code == 200

            async def acked_and_resolved() -> bool:
                m = await scrape(reporting.url)
                return (total(m, "cx_alert_ack_seconds_count") == 1 and total(m, "cx_alert_resolve_seconds_count") == 1
                        and total(m, "cx_alerts_open") == 0)
            await wait_until(acked_and_resolved, timeout=30, what="ack and resolution counted")
            m = await scrape(reporting.url)
            async with httpx.AsyncClient(base_url=reporting.url, headers=ADMIN) as http:
                (row,) = (await http.get("/v1/kpis")).json()["rows"]

    assert total(m, "cx_feedback_total") == 3
    assert value(m, "cx_negative_mot_total", channel="kiosk", location="北京国贸店", touchpoint="checkout") == 1
    assert value(m, "cx_nps_responses_total", channel="survey", category="promoter") == 1
    assert value(m, "cx_csat_responses_total", channel="web", score="5") == 1
    assert (row["feedback"], row["scored"], row["negative"], row["alerts_raised"], row["alerts_open"]) == (3, 3, 1, 1, 0)
    assert row["nps"] == 100.0 and row["csat"] == 1.0
    assert row["ack_p50_seconds"] is not None and row["resolve_p50_seconds"] is not None
