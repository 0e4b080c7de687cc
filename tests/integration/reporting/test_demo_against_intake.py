"""`keymoment demo` against a running intake, with reporting counting what arrives."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.reporting import demo
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from tests.integration.reporting.support import ADMIN, scrape, total
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration


async def test_demo_backfills_through_intake_into_reporting(service_env, capsys):
    intake_settings = IntakeSettings(**service_env)
    reporting_settings = ReportingSettings(
        **{**service_env, "kafka_consumer_group": f"reporting-{uuid.uuid4().hex[:8]}"}, reporting_refresh_seconds=0.2)
    key = intake_settings.dev_api_key.get_secret_value()
    async with running(create_intake(intake_settings)) as intake, running(create_reporting(reporting_settings)) as rep:
        argv = ["--url", intake.url, "--api-key", key, "--count", "120", "--rate", "1000", "--days", "3",
                "--batch", "50", "--seed", "42"]
        assert await asyncio.to_thread(demo.main, argv) == 0
        assert "accepted 120, rejected 0" in capsys.readouterr().out
        # the same seed again: intake recognises every item (idempotency keys), nothing is counted twice
        assert await asyncio.to_thread(demo.main, argv) == 0

        async def counted() -> bool:
            return total(await scrape(rep.url), "cx_feedback_total") == 120
        await wait_until(counted, timeout=20, what="120 demo feedback counted by reporting")
        async with httpx.AsyncClient(base_url=rep.url, headers=ADMIN) as http:
            by_channel = (await http.get("/v1/kpis", params={"group_by": "channel"})).json()["rows"]
        m = await scrape(rep.url)
    assert total(m, "cx_feedback_total") == 120
    assert sum(r["feedback"] for r in by_channel) == 120
    assert {r["group"] for r in by_channel} == set(demo.CHANNEL_WEIGHTS)
