"""An event from intake's producer, through the real broker, into reporting's table."""

import asyncpg

from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from tests.support.services import running, wait_until


async def test_feedback_flows_from_intake_to_reporting_table(service_env, database_url):
    async with running(create_intake(IntakeSettings(**service_env))) as intake, running(
        create_reporting(ReportingSettings(**service_env))
    ):
        async with intake.client() as http:
            response = await http.post(
                "/v1/feedback",
                json={"channel": "kiosk", "rating": {"scale": "mot", "value": -3}, "location": "store-12"},
                headers={"X-API-Key": getattr(intake.runtime.settings, "dev_api_key", None) and intake.runtime.settings.dev_api_key.get_secret_value() or ""},
            )
        assert response.status_code == 202, response.text
        feedback_id = response.json()["id"]

        conn = await asyncpg.connect(database_url)
        try:
            async def stored() -> bool:
                return await conn.fetchval(
                    "SELECT count(*) FROM reporting.feedback_facts WHERE feedback_id = $1", feedback_id
                ) == 1

            await wait_until(stored, timeout=20, what="feedback row in reporting.feedback_facts")
            row = await conn.fetchrow("SELECT * FROM reporting.feedback_facts WHERE feedback_id = $1", feedback_id)
        finally:
            await conn.close()
    assert (row["channel"], row["location"], row["rating_scale"], row["rating_value"]) == ("kiosk", "store-12", "mot", -3)
