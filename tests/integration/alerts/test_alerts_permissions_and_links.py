"""Issue 14 in alerts, over HTTP on the real service: scoped manager tokens and silences (a
manager's global silence is 403), email links in their recipient's name refused on a newer
state, recovery answers only from survey, tokens of before; and the upgrade from the old
notification sender (issue 16: nothing it had not delivered is lost, nothing sent again)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.alerts import handlers
from shared.db import migrate
from tests.integration.alerts.support import (
    alerts_app,
    database,
    feedback,
    links_in,
    producer,
    settings,
    smtp_server,
    wait_mail,
)
from tests.support.services import wait_until

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-token"}
MIGRATIONS = Path(handlers.__file__).parent / "migrations"


def _in(days: float) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


async def _token(http, email: str, **body) -> tuple[dict, dict]:
    issued = await http.post(f"/v1/managers/{email}/tokens", headers=ADMIN, json=body or None)
    assert issued.status_code == 201, issued.text
    return {"Authorization": f"Bearer {issued.json()['token']}"}, issued.json()


async def test_a_manager_silences_only_their_teams_for_a_week_at_most_and_expires_only_their_own(
    service_env, database_url
):
    with smtp_server() as smtp:
        async with alerts_app(settings(service_env, smtp)) as app, app.client() as http:
            store, store_token = await _token(http, "store.ops@example.com")
            centre, centre_token = await _token(http, "cc.supervisor@example.com")
            assert (store_token["teams"], centre_token["teams"]) == (["retail-stores"], ["contact-centre"])

            def silence(matchers: dict, **extra):
                return {"matchers": matchers, "ends_at": _in(1), "comment": "POS outage, ticket 4711", **extra}

            everything = await http.post("/v1/silences", headers=store, json=silence({"channel": "*"}))
            assert everything.status_code == 403
            assert everything.headers["www-authenticate"].startswith('Bearer error="insufficient_scope"')
            for matchers in ({"location": "store-*"}, {"team": "*"}, {"team": "contact-centre"}):
                assert (await http.post("/v1/silences", headers=store, json=silence(matchers))).status_code == 403
            escalations = silence({"team": "retail-stores"}, include_escalations=True)
            assert (await http.post("/v1/silences", headers=store, json=escalations)).status_code == 403
            too_long = {**silence({"team": "retail-stores"}), "ends_at": _in(8)}
            assert (await http.post("/v1/silences", headers=store, json=too_long)).status_code == 422
            no_comment = {**silence({"team": "retail-stores"}), "comment": "  "}
            assert (await http.post("/v1/silences", headers=store, json=no_comment)).status_code == 422

            created = await http.post("/v1/silences", headers=store,
                                      json=silence({"team": "retail-stores", "location": "store-*"}))
            assert created.status_code == 201, created.text
            mine = created.json()
            assert (mine["created_by"], mine["include_escalations"]) == ("store.ops@example.com", False)
            assert (await http.get("/v1/silences", headers=centre)).json() == []  # not a silence of their team
            assert [s["silence_id"] for s in (await http.get("/v1/silences", headers=store)).json()] == [
                mine["silence_id"]]
            assert (await http.delete(f"/v1/silences/{mine['silence_id']}", headers=centre)).status_code == 403
            expired = await http.delete(f"/v1/silences/{mine['silence_id']}", headers=store)
            assert expired.status_code == 200 and expired.json()["expired_by"] == "store.ops@example.com"
            everyone = await http.post("/v1/silences", headers=ADMIN, json=silence({"channel": "*"},
                                                                                    include_escalations=True))
            assert everyone.status_code == 201  # an admin's to make

            trail = (await http.get(f"/v1/silences/{mine['silence_id']}", headers=ADMIN)).json()["history"]
            assert [(h["action"], h["actor"]) for h in trail] == [
                ("created", "store.ops@example.com"), ("expired", "store.ops@example.com")]
            assert trail[0]["detail"]["comment"] == "POS outage, ticket 4711"

            chosen, chosen_token = await _token(http, "regional.lead@example.com",
                                                teams=["retail-stores", "contact-centre"])
            assert chosen_token["teams"] == ["contact-centre", "retail-stores"]
            unknown = await http.post("/v1/managers/x@example.com/tokens", headers=ADMIN, json={"teams": ["nope"]})
            assert unknown.status_code == 422 and "nope" in unknown.text
            assert (await http.post("/v1/silences", headers=chosen,
                                    json=silence({"team": ["retail-stores", "contact-centre"]}))).status_code == 201


async def test_each_recipients_links_act_as_them_only_and_are_refused_once_the_alert_moved_on(
    service_env, database_url
):
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            tap = feedback(rating={"scale": "mot", "value": -3}, location="PEK-T3", touchpoint="baggage claim",
                           customer={"id": "c-9"})
            await send(tap)
            alert_id = (await db.wait_alert(tap.data.id))["alert_id"]
            await wait_mail(smtp, 2)
            by_recipient = {r[0]: links_in(m) for m, r in zip(smtp.messages, smtp.recipients, strict=True)}
            assert set(by_recipient) == {"li.na@example.com", "duty.manager.pek@example.com"}
            mine, theirs = by_recipient["li.na@example.com"], by_recipient["duty.manager.pek@example.com"]

            def path(url: str) -> str:
                return url.removeprefix("http://alerts.test")

            page = await http.get(path(mine["Acknowledge"]))
            assert page.status_code == 200 and "li.na@example.com" in page.text
            assert "duty.manager.pek@example.com" not in page.text  # the link page shows its own recipient only
            done = await http.post(path(mine["Acknowledge"]), data={"who": "duty.manager.pek@example.com"})
            assert done.status_code == 200 and "acknowledged" in done.text
            assert (await db.alert_for(tap.data.id))["acknowledged_by"] == "li.na@example.com"  # "who" is ignored

            # the other manager's mail was made for the alert as it was: its links act no more
            stale = await http.post(path(theirs["Explore"]))
            assert stale.status_code == 409 and "li.na@example.com" in stale.text
            assert (await http.get(path(theirs["Resolve"]))).status_code == 409
            # the done page offers the next steps, signed for the state the alert is in now
            explore = re.search(r'href="http://alerts.test(/l/[^"]+)"', done.text).group(1)
            assert (await http.post(explore)).status_code == 200
            assert (await db.alert_for(tap.data.id))["status"] == "explore"

            resolved = await http.post(f"/v1/alerts/{alert_id}/resolve", headers=ADMIN)
            assert resolved.status_code == 200 and resolved.json()["state_version"] == 3

            # a recovery answer is honoured only from survey's own events
            forged = feedback(channel="survey", rating={"scale": "mot", "value": -3}, customer={"id": "c-9"},
                              survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id},
                              source="/keymoment/intake")
            await send(forged)
            await db.wait_alert(forged.data.id)  # an ordinary negative feedback: an alert of its own
            assert (await db.alert_for(tap.data.id))["status"] == "resolved"
            answer = feedback(channel="survey", rating={"scale": "mot", "value": -2}, customer={"id": "c-9"},
                              survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id})
            await send(answer)
            await wait_until(lambda: _status(db, alert_id, "reopened"), what="reopened by survey's answer")

            # an old "resolve" link cannot close the reopened alert
            old_resolve = await http.post(path(mine["Resolve"]))
            assert old_resolve.status_code == 409 and "reopened" in old_resolve.text
            assert (await db.alert_for(tap.data.id))["status"] == "reopened"
            await wait_until(lambda: _mail_to(smtp, "li.na@example.com", "重开/Reopened"), what="reopened mail")
            reopened = next(links_in(m) for m in smtp.to("li.na@example.com") if "重开/Reopened" in m["Subject"])
            assert (await http.post(path(reopened["Resolve"]))).status_code == 200
            assert (await db.alert_for(tap.data.id))["status"] == "resolved"

            detail = (await http.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()
        raised = detail["notifications"][0]
        assert (raised["kind"], raised["status"]) == ("raised", "sent")
        assert sorted(d["recipients"][0] for d in raised["deliveries"]) == [
            "duty.manager.pek@example.com", "li.na@example.com"]
        assert all(d["state"] == "sent" and d["attempts"] == 1 for d in raised["deliveries"])


async def _status(db, alert_id: str, status: str) -> bool:
    return await db.conn.fetchval("SELECT status FROM alerts.alerts WHERE alert_id = $1", alert_id) == status


def _mail_to(smtp, address: str, subject_part: str) -> bool:
    return any(subject_part in m["Subject"] for m in smtp.to(address))


def _old_token(key: bytes, prefix: str, claims: dict) -> str:
    """A token as alerts signed them before ``shared.signing`` (``<prefix>.<payload>.<mac>``)."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{prefix}.{body}.{b64(hmac.new(key, f'{prefix}.{body}'.encode(), hashlib.sha256).digest())}"


async def test_tokens_handed_out_before_the_upgrade(service_env, database_url):
    """A manager token of before keeps working, for the teams the routes file names its manager in; a
    mail link of before names neither its recipient nor the alert's state, so it is answered 410."""
    with smtp_server() as smtp:
        s = settings(service_env, smtp)
        key = s.link_signing_key.get_secret_value().encode()
        expires = int((datetime.now(UTC) + timedelta(days=1)).timestamp())
        async with alerts_app(s) as app, producer(s) as send, database(database_url) as db, app.client() as http:
            _, issued = await _token(http, "cc.supervisor@example.com")
            old = {"Authorization": "Bearer " + _old_token(
                key, "m1", {"t": issued["token_id"], "e": "cc.supervisor@example.com", "exp": expires})}
            complaint = feedback(channel="phone", rating={"scale": "mot", "value": -2}, location="call-centre")
            store = feedback(rating={"scale": "mot", "value": -2}, location="store-4")
            await send(complaint, store)
            alert_id = (await db.wait_alert(complaint.data.id))["alert_id"]
            await db.wait_alert(store.data.id)
            listed = await http.get("/v1/alerts", headers=old)
            assert listed.status_code == 200 and [a["alert_id"] for a in listed.json()["alerts"]] == [alert_id]
            [note] = await db.notifications(alert_id)
            link = _old_token(key, "l1", {"n": note["notification_id"], "a": alert_id, "do": "ack", "exp": expires})
            gone = await http.get(f"/l/{link}")
            assert gone.status_code == 410 and "newer mail" in gone.text
            assert (await http.post(f"/l/{link}")).status_code == 410
            assert (await http.delete(f"/v1/managers/tokens/{issued['token_id']}", headers=ADMIN)).status_code == 204
            assert (await http.get("/v1/alerts", headers=old)).status_code == 401  # revocable as before


async def test_notifications_the_old_sender_had_not_delivered_are_sent_after_the_upgrade(
    service_env, database_url, tmp_path
):
    shutil.copy(MIGRATIONS / "0001_create_alerts.sql", tmp_path)  # the schema as the old code left it
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="alerts", directory=tmp_path)
        await conn.execute(
            """INSERT INTO alerts.alerts (alert_id, feedback_id, severity, status, channel, location, summary, route,
                   team, recipients, raised_at, last_feedback_at, updated_at)
               VALUES ('a-old', 'f-old', -2, 'open', 'kiosk', 'store-1', '排队太久', 'stores', 'retail-stores',
                       '{store.ops@example.com}', now(), now(), now())""")
        for nid, kind, status, recipients in (
            ("n-sent", "raised", "sent", ["store.ops@example.com"]),
            ("n-pending", "escalation", "pending", ["zhao.lei@example.com", "sun.yu@example.com"]),
            ("n-suppressed", "update", "suppressed", ["store.ops@example.com"]),
        ):
            await conn.execute(
                """INSERT INTO alerts.notifications (notification_id, alert_id, kind, level, recipients, subject,
                       body_text, body_html, message_id, status, silence_id, attempts, next_attempt_at, created_at,
                       sent_at)
                   VALUES ($1, 'a-old', $2, 1, $3, '[MOT -2] store-1: 排队太久', '旧邮件 / old mail', '<p>old</p>',
                           '<' || $1 || '@alerts.keymoment>', $4, CASE WHEN $4 = 'suppressed' THEN 's-old' END,
                           CASE WHEN $4 = 'sent' THEN 1 ELSE 3 END, now(), now(), CASE WHEN $4 = 'sent' THEN now() END)""",
                nid, kind, recipients, status)
    finally:
        await conn.close()

    with smtp_server() as smtp:
        async with alerts_app(settings(service_env, smtp)) as app, database(database_url) as db, \
                app.client() as http:
            await wait_mail(smtp, 1)
            await wait_until(lambda: _all_sent(db), what="the legacy notification sent")
            backlog = await db.conn.fetchval("SELECT count(*) FROM alerts.notification_backlog")
            queued = {r["ref"]: r for r in await db.conn.fetch("SELECT * FROM alerts.mail_queue")}
            detail = (await http.get("/v1/alerts/a-old", headers=ADMIN)).json()
    assert [m["Message-ID"] for m in smtp.messages] == ["<n-pending@alerts.keymoment>"]  # sent as rendered, once
    assert smtp.recipients == [["sun.yu@example.com", "zhao.lei@example.com"]]
    assert "旧邮件" in smtp.messages[0].get_body(("plain",)).get_content()
    assert backlog == 0 and set(queued) == {"n-sent", "n-pending"}  # a suppressed one is never queued
    assert (queued["n-sent"]["state"], queued["n-sent"]["message"], queued["n-sent"]["attempts"]) == ("sent", None, 1)
    assert {n["notification_id"]: n["status"] for n in detail["notifications"]} == {
        "n-sent": "sent", "n-pending": "sent", "n-suppressed": "suppressed"}


async def _all_sent(db) -> bool:
    return not await db.conn.fetchval("SELECT count(*) FROM alerts.mail_queue WHERE state <> 'sent'")
