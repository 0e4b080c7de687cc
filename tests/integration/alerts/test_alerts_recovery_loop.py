"""SLA escalation with a controllable clock, signed email links, the recovery loop API and reopening."""

from __future__ import annotations

import httpx
import pytest

from services.alerts import scheduler
from shared.clock import ManualClock
from shared.contracts import AlertUpdated, SurveyRequested
from tests.integration.alerts.support import (
    alerts_app,
    database,
    events_of,
    feedback,
    links_in,
    plain,
    producer,
    read_topic,
    settings,
    smtp_server,
    wait_mail,
)
from tests.support.services import wait_until

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-token"}


async def test_unacknowledged_alert_escalates_after_its_sla_then_ack_stops_the_timer(service_env, database_url):
    clock = ManualClock()
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s, clock=clock) as app, producer(s) as send, database(database_url) as db:
            tap = feedback(rating={"scale": "mot", "value": -3}, location="PEK-T2", touchpoint="security")
            await send(tap)
            alert = await db.wait_alert(tap.data.id)
            await wait_mail(smtp, 2)  # one mail to each of the two delivery managers (level 1)
            # the airport team's SLA for -3 is 10 minutes (routes.example.yaml)
            assert round((alert["sla_due_at"] - alert["raised_at"]).total_seconds()) == 600
            clock.advance(minutes=9)
            clock.advance(seconds=59)
            assert await scheduler.run_once(app.runtime.pool, app.app.state.context) == []
            assert (await db.alert_for(tap.data.id))["escalation_level"] == 1
            clock.advance(seconds=2)
            await wait_mail(smtp, 4)
            escalated = await db.alert_for(tap.data.id)
            assert (escalated["escalation_level"], escalated["sla_breached"]) == (2, True)
            # level 2, one mail each (was one mail to both before issue 14's links in each recipient's name)
            assert sorted(smtp.recipients[2:]) == [["chen.jie@example.com"], ["wang.fang@example.com"]]
            assert all("升级/Escalated" in m["Subject"] for m in smtp.messages[2:])
            assert all("第 2 级 / level 2" in plain(m) for m in smtp.messages[2:])

            async with app.client() as http:
                response = await http.post(f"/v1/alerts/{alert['alert_id']}/ack", json={"note": "calling the customer"},
                                           headers=ADMIN)
                assert response.status_code == 200, response.text
                assert response.json()["status"] == "acknowledged"
            clock.advance(hours=2)  # no further escalation after the ack
            updates = await read_topic(s.kafka_bootstrap_servers, s.topic("alert.updated.v1"), at_least=2)
            final = await db.alert_for(tap.data.id)
        assert final["sla_due_at"] is None and final["escalation_level"] == 2
        assert len(smtp.messages) == 4
        events = events_of(updates, AlertUpdated)
        assert [(e.status.value, e.sla_breached) for e in events] == [("open", True), ("acknowledged", True)]
        assert events[1].acknowledged_at is not None and events[1].actor == "admin"


async def test_signed_email_link_acknowledges_after_a_confirmation_page(service_env, database_url):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db:
            tap = feedback(rating={"scale": "csat", "value": 1}, location="store-7", touchpoint="checkout")
            await send(tap)
            alert = await db.wait_alert(tap.data.id)
            await wait_mail(smtp, 1)
            links = links_in(smtp.messages[0])
            assert set(links) == {"Acknowledge", "Explore", "Resolve"}
            path = links["Acknowledge"].removeprefix("http://alerts.test")
            async with app.client() as http:
                page = await http.get(path)
                assert page.status_code == 200 and "store.ops@example.com" in page.text
                assert (await db.alert_for(tap.data.id))["status"] == "open"  # GET changes nothing
                done = await http.post(path, data={"who": "store.ops@example.com", "note": "我来处理"})
                assert done.status_code == 200 and "acknowledged" in done.text
                again = await http.post(path, data={"who": "store.ops@example.com"})
                assert again.status_code == 409 and "store.ops@example.com" in again.text
                forged = await http.get(path[:-3] + "xyz")
                assert forged.status_code == 404
            acked = await db.alert_for(tap.data.id)
            history = await db.conn.fetch(
                "SELECT action, actor, note FROM alerts.alert_events WHERE alert_id = $1 ORDER BY id", alert["alert_id"])
        assert (acked["status"], acked["acknowledged_by"]) == ("acknowledged", "store.ops@example.com")
        assert [(h["action"], h["actor"]) for h in history] == [("raised", "system"), ("acknowledged", "store.ops@example.com")]
        assert history[1]["note"] == "我来处理 (via email link)"


async def test_recovery_loop_enforces_order_resolves_with_a_survey_and_a_negative_answer_reopens(
    service_env, database_url
):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db:
            complaint = feedback(
                channel="phone", rating={"scale": "nps", "value": 1}, location="call-centre",
                customer={"id": "c-7", "email": "li.wei@example.cn"}, language="zh-CN",
                text="等了四十分钟没人接电话",
            )
            await send(complaint)
            alert = await db.wait_alert(complaint.data.id)
            alert_id = alert["alert_id"]
            async with app.client() as http:
                assert (await http.get("/v1/alerts")).status_code == 401
                token = (await http.post("/v1/managers/cc.supervisor@example.com/tokens", headers=ADMIN)).json()
                manager = {"Authorization": f"Bearer {token['token']}"}
                outsider_token = (await http.post("/v1/managers/someone@example.com/tokens", headers=ADMIN)).json()
                outsider = {"Authorization": f"Bearer {outsider_token['token']}"}
                assert (await http.post(f"/v1/managers/x@example.com/tokens", headers=manager)).status_code == 403

                listed = (await http.get("/v1/alerts", params={"status": "open"}, headers=manager)).json()
                assert [a["alert_id"] for a in listed["alerts"]] == [alert_id]
                assert (await http.get("/v1/alerts", headers=outsider)).json()["alerts"] == []
                assert (await http.post(f"/v1/alerts/{alert_id}/ack", headers=outsider)).status_code == 403

                skip = await http.post(f"/v1/alerts/{alert_id}/transition", json={"step": "offer"}, headers=manager)
                assert skip.status_code == 409 and skip.json()["status"] == "open"
                for step in ("explore", "offer", "action", "confirm"):
                    moved = await http.post(f"/v1/alerts/{alert_id}/transition",
                                            json={"step": step, "note": f"{step} done"}, headers=manager)
                    assert moved.status_code == 200 and moved.json()["status"] == step, moved.text
                back = await http.post(f"/v1/alerts/{alert_id}/transition", json={"step": "explore"}, headers=manager)
                assert back.status_code == 409
                resolved = await http.post(f"/v1/alerts/{alert_id}/resolve", json={"note": "refund given"}, headers=manager)
                assert resolved.status_code == 200 and resolved.json()["resolved_by"] == "cc.supervisor@example.com"
                assert (await http.post(f"/v1/alerts/{alert_id}/resolve", headers=manager)).status_code == 409

                revoked = await http.delete(f"/v1/managers/tokens/{token['token_id']}", headers=ADMIN)
                assert revoked.status_code == 204
                assert (await http.get("/v1/alerts", headers=manager)).status_code == 401

                surveys = await read_topic(s.kafka_bootstrap_servers, s.topic("survey.requested.v1"), at_least=1)
                request = events_of(surveys, SurveyRequested)[0]
                assert (request.alert_id, request.customer.email, request.kind) == (alert_id, "li.wei@example.cn", "recovery")

                answer = feedback(channel="survey", rating={"scale": "mot", "value": -2},
                                  customer={"id": "c-7", "email": "li.wei@example.cn"},
                                  survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id})
                await send(answer)
                await wait_until(lambda: _status(db, alert_id, "reopened"), what="alert reopened")
                await wait_mail(smtp, 2)
                detail = (await http.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()
        assert detail["reopen_count"] == 1 and detail["resolved_at"] is None and detail["feedback_count"] == 2
        assert [f["role"] for f in detail["feedback"]] == ["raised", "recovery_answer"]
        assert [h["action"] for h in detail["history"]] == [
            "raised", "explore", "offer", "action", "confirm", "resolved", "recovery_survey_requested", "reopened",
        ]
        assert [n["kind"] for n in detail["notifications"]] == ["raised", "reopened"]
        assert "重开/Reopened" in smtp.messages[1]["Subject"]


async def _status(db, alert_id: str, status: str) -> bool:
    return await db.conn.fetchval("SELECT status FROM alerts.alerts WHERE alert_id = $1", alert_id) == status


async def test_unknown_bearer_and_bad_requests(service_env, database_url):
    with smtp_server() as smtp:
        async with alerts_app(settings(service_env, smtp)) as app, app.client() as http:
            assert (await http.get("/v1/alerts", headers={"Authorization": "Bearer nope"})).status_code == 401
            assert (await http.get("/v1/alerts/nothing", headers=ADMIN)).status_code == 404
            bad = await http.post("/v1/alerts/x/transition", json={"step": "dance"}, headers=ADMIN)
            assert bad.status_code == 422
            metrics = (await http.get("/metrics")).text
            assert "keymoment_alerts_raised_total" in metrics and "keymoment_alerts_emails_total" in metrics
            assert isinstance(http, httpx.AsyncClient)
