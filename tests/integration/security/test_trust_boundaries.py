"""Trust boundaries outside alerts' own permissions (issue 14, item 4): intake refuses the
recovery field from API keys; alerts honours a recovery answer only on survey's own events;
a consumer dead-letters events from a source that does not produce their type."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.intake.app import create_app as intake_app
from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope, dlq_topic, event_source
from shared.privacy import DEV_PRIVACY_HASH_KEY
from tests.integration.alerts.support import (
    alerts_app,
    database,
    producer,
    read_topic,
    settings,
    smtp_server,
)
from tests.integration.intake_channels.support import dev_key, intake_settings, received
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration
KEY = DEV_PRIVACY_HASH_KEY.encode()  # every service's key in the test environment

ADMIN = {"Authorization": "Bearer dev-admin-token"}


@pytest.mark.parametrize("hot_path", [True, False], ids=["hot-path", "fastapi-route"])
async def test_intake_refuses_a_recovery_claim_from_an_api_key(service_env, kafka_bootstrap, hot_path):
    s = intake_settings(service_env)
    claim = {"channel": "survey", "rating": {"scale": "mot", "value": -3},
             "survey": {"survey_id": "recovery", "recovery_for_alert_id": "a-computable-uuid5"}}
    plain = {"channel": "survey", "rating": {"scale": "nps", "value": 9}, "survey": {"survey_id": "nps-2026"}}
    async with running(intake_app(s, hot_path=hot_path)) as svc, svc.client(headers={"X-API-Key": dev_key(svc)}) as http:
        single = await http.post("/v1/feedback", json=claim)
        batch = await http.post("/v1/feedback:batch", json=[claim, plain])
        ok = await http.post("/v1/feedback", json=plain)
    assert single.status_code == 422, single.text
    assert single.json()["errors"] == [{"path": "survey.recovery_for_alert_id", "type": "reserved_field",
                                        "message": "set only by Keymoment's survey service; an API key may not send it"}]
    assert batch.status_code == 200 and batch.json()["accepted"] == 1
    refused, accepted = batch.json()["results"]
    assert refused["errors"][0]["path"] == "survey.recovery_for_alert_id" and accepted["id"]
    assert ok.status_code == 202
    events = await received(kafka_bootstrap, s)
    assert {e.id for e in events} == {accepted["id"], ok.json()["id"]}
    assert all(e.survey.recovery_for_alert_id is None for e in events)


def _feedback(source: str, *, recovery_for: str | None = None, rating: int = -3) -> Envelope:
    data = FeedbackReceived(
        id=str(uuid.uuid4()), received_at=datetime.now(UTC), source="test", channel="survey" if recovery_for else "kiosk",
        text="排队一个小时，没人管", rating={"scale": "mot", "value": rating}, location="PEK-T3", touchpoint="security",
        customer={"id": "c-77", "email": "zhao.lei@example.cn"},
        survey={"survey_id": "recovery", "recovery_for_alert_id": recovery_for} if recovery_for else None,
    )
    return Envelope.new(FEEDBACK_RECEIVED, data, source=source, key=data.partition_key(KEY))


async def test_alerts_honours_recovery_answers_only_from_survey_and_dead_letters_strangers(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            complaint = _feedback(event_source("intake"))
            await send(complaint)
            alert_id = (await db.wait_alert(complaint.data.id))["alert_id"]
            resolved = await http.post(f"/v1/alerts/{alert_id}/resolve", headers=ADMIN)
            assert resolved.status_code == 200, resolved.text

            forged = _feedback(event_source("intake"), recovery_for=alert_id)  # as if an API key had sent it
            stranger = _feedback("/keymoment/crm-sync")
            await send(forged, stranger)
            await wait_until(lambda: db.processed(forged.id), what="the forged answer consumed")
            after_forged = await db.conn.fetchrow("SELECT status, reopen_count FROM alerts.alerts WHERE alert_id = $1",
                                                  alert_id)
            forged_alert = await db.alert_for(forged.data.id)  # handled as ordinary negative feedback

            genuine = _feedback(event_source("survey"), recovery_for=alert_id)
            await send(genuine)
            await wait_until(lambda: db.processed(genuine.id), what="the survey's answer consumed")
            after_genuine = await db.conn.fetchrow("SELECT status, reopen_count FROM alerts.alerts WHERE alert_id = $1",
                                                   alert_id)
            letters = await read_topic(s.kafka_bootstrap_servers, dlq_topic(s.topic(FEEDBACK_RECEIVED.topic)),
                                       at_least=1)
            stranger_handled = await db.processed(stranger.id)
    assert (after_forged["status"], after_forged["reopen_count"]) == ("resolved", 0)
    assert forged_alert is not None and forged_alert["alert_id"] != alert_id
    assert (after_genuine["status"], after_genuine["reopen_count"]) == ("reopened", 1)
    (letter,) = letters
    headers = dict(letter.headers)
    assert headers["ce_id"].decode() == stranger.id and not stranger_handled
    assert headers["dlq_error"].decode().startswith("untrusted source '/keymoment/crm-sync'")
