"""Issue 14's erasure test, through the real services on the harness's broker and PostgreSQL:
a customer with feedback (web, email, kiosk), an alert, mails (the managers' notifications and
their survey invitation) and a survey response is erased with ``keymoment privacy erase``; then
every table of every schema is searched for their email, phone, name and id, also inside the
stored mail bytes (RFC 2047 headers, base64 and quoted-printable bodies): nothing is left. Another
customer's data stays; the alerts and the KPIs stay; a replayed erasure does nothing more; the
customer's older events arriving late are dropped."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import re
import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr
from urllib.parse import urlsplit

import asyncpg
import pytest

from services.alerts.app import create_app as create_alerts
from services.intake.app import create_app as create_intake
from services.intake.settings import IntakeSettings
from services.reporting import cli
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from services.survey.app import create_app as create_survey
from services.survey.settings import SurveySettings
from shared.contracts import ErasureRequested, FeedbackReceived, SurveyRequested
from shared.events import ERASURE_REQUESTED, FEEDBACK_RECEIVED, SURVEY_REQUESTED, Envelope
from shared.kafka import Publisher
from shared.privacy import DEV_PRIVACY_HASH_KEY, pseudonym
from tests.integration.alerts.support import settings as alerts_settings
from tests.integration.alerts.support import smtp_server
from tests.integration.privacy.support import Needle, search
from tests.integration.survey.support import link_in
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer dev-admin-token"}
KEY = DEV_PRIVACY_HASH_KEY.encode()  # every service's key in the test environment
SERVICES = ("intake", "survey", "alerts", "reporting")

NAME, EMAIL, PHONE, CUSTOMER_ID = "周晓梅", "Zhou.Xiaomei@example.cn", "+86 139-1234-5678", "C-20931"
CUSTOMER = {"id": CUSTOMER_ID, "name": NAME, "email": EMAIL, "phone": PHONE}
PLACE = {"location": "门店-上海静安", "touchpoint": "checkout"}
HER = [Needle(NAME), Needle(EMAIL), Needle("139 1234 5678", digits=True), Needle(CUSTOMER_ID)]
OTHER_NAME = "李雷"  # another customer at the same place: not erased


def email_from_her() -> bytes:
    mail = EmailMessage()
    mail["From"] = formataddr((NAME, EMAIL))  # RFC 2047 encoded by the generator
    mail["To"] = "feedback@example.com"
    mail["Subject"] = "投诉：包裹丢失"
    mail["Message-ID"] = "<m-4711@mail.example.net>"
    mail["Date"] = "Mon, 30 Nov 2026 09:30:00 +0800"
    mail.set_content(f"包裹丢了一个星期，客服也不理人，太差了，我要投诉！我是{NAME}，电话 139 1234 5678",
                     cte="base64")
    return mail.as_bytes()


async def settled(conn: asyncpg.Connection) -> bool:
    """Every outbox relayed, every mail sent."""
    pending = await conn.fetchval(
        """SELECT (SELECT count(*) FROM intake.outbox) + (SELECT count(*) FROM alerts.outbox)
                  + (SELECT count(*) FROM survey.outbox) + (SELECT count(*) FROM reporting.outbox)
                  + (SELECT count(*) FROM alerts.mail_queue WHERE state IN ('pending', 'sending'))
                  + (SELECT count(*) FROM survey.mail_queue WHERE state IN ('pending', 'sending'))""")
    return pending == 0


async def processed_everywhere(conn: asyncpg.Connection, event_id: str, services=SERVICES) -> bool:
    for service in services:
        if not await conn.fetchval(f"SELECT true FROM {service}.processed_events WHERE event_id = $1", event_id):
            return False
    return True


async def publish(service_env: dict, *events: Envelope) -> None:
    publisher = Publisher(service_env["kafka_bootstrap_servers"], client_id="privacy-test")
    await publisher.start()
    try:
        await publisher.publish([(service_env["kafka_topic_prefix"] + e.event_type.topic, e) for e in events])
    finally:
        await publisher.stop()


def erase_with_the_command(url: str) -> tuple[int, dict]:
    """``keymoment privacy erase`` by email (another spelling) and phone (another format): not the id."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["erase", "--email", EMAIL.upper(), "--phone", "+86 139 1234 5678", "--url", url,
                         "--token", "dev-admin-token", "--wait", "90", "--json"])
    return code, json.loads(out.getvalue())


def show_with_the_command(url: str, erasure_id: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["show", erasure_id, "--url", url, "--token", "dev-admin-token"])
    return code, out.getvalue()


async def test_an_erased_customer_is_nowhere(service_env, database_url):
    suffix = uuid.uuid4().hex[:8]

    def env(service: str) -> dict:
        return {**service_env, "kafka_consumer_group": f"{service}-{suffix}"}

    with smtp_server() as smtp:
        intake_app = create_intake(IntakeSettings(**env("intake")))
        alerts_app = create_alerts(alerts_settings(env("alerts"), smtp))
        survey_app = create_survey(SurveySettings(**env("survey"), smtp_host="127.0.0.1", smtp_port=smtp.port,
                                                  mail_poll_seconds=0.2))
        reporting_app = create_reporting(ReportingSettings(**env("reporting")))
        async with running(intake_app) as intake, running(alerts_app) as alerts, running(survey_app) as survey, \
                running(reporting_app) as reporting:
            db = await asyncpg.connect(database_url)
            try:
                await _the_customers_story(intake, alerts, survey, smtp, db)
                before = await search(db, HER + [Needle(OTHER_NAME)])
                await _what_was_stored_before(before)
                facts = await db.fetchval("SELECT count(*) FROM reporting.feedback_facts")
                alert_rows = await db.fetch("SELECT alert_id, status, severity, feedback_count FROM alerts.alerts "
                                            "ORDER BY alert_id")

                code, answer = await asyncio.to_thread(erase_with_the_command, reporting.url)
                assert code == 0 and answer["status"] == "done", answer
                await _what_each_service_reports(answer)
                code, shown = await asyncio.to_thread(show_with_the_command, reporting.url, answer["id"])
                assert code == 0 and shown.splitlines()[0].startswith(f"erasure {answer['id']}: done"), shown
                assert {line.split()[0] for line in shown.splitlines()[1:]} == set(SERVICES), shown

                hits = await search(db, HER)
                assert hits == [], "\n".join(map(str, hits))
                assert any(h.needle == OTHER_NAME for h in await search(db, [Needle(OTHER_NAME)])), \
                    "another customer's feedback was erased too"
                await _only_the_register_keeps_pseudonyms(db)
                # the alerts and the KPIs stay
                assert await db.fetchval("SELECT count(*) FROM reporting.feedback_facts") == facts
                assert await db.fetch("SELECT alert_id, status, severity, feedback_count FROM alerts.alerts "
                                      "ORDER BY alert_id") == alert_rows
                assert await db.fetchval("SELECT reason FROM survey.suppressions WHERE address_hash = $1",
                                         pseudonym(KEY, "email", EMAIL)) == "erased"

                await _a_replay_does_nothing_more(service_env, db, answer)
                await _late_events_are_dropped(service_env, db, answer)
                assert await search(db, HER) == []
            finally:
                await db.close()


async def _the_customers_story(intake, alerts, survey, smtp, db: asyncpg.Connection) -> None:
    key = {"X-API-Key": intake.runtime.settings.dev_api_key.get_secret_value()}
    async with intake.client(headers=key) as http:
        web = await http.post("/v1/feedback", json={
            "channel": "web", "customer": CUSTOMER, **PLACE, "rating": {"scale": "mot", "value": -3},
            "text": f"收银员态度很差，我叫{NAME}，电话 139 1234 5678，请联系我"})
        assert web.status_code == 202, web.text
        # the other customer's feedback joins her alert (posted after it: partitions keep no order between them)
        await wait_until(lambda: db.fetchval("SELECT true FROM alerts.alerts WHERE feedback_id = $1", web.json()["id"]),
                         timeout=60, what="her alert")
        other = await http.post("/v1/feedback", json={
            "channel": "web", "customer": {"name": OTHER_NAME, "email": "li.lei@example.com"}, **PLACE,
            "text": f"我是{OTHER_NAME}，排队四十分钟，收银员态度很差，非常失望"})
        assert other.status_code == 202, other.text
        kiosk = await http.post("/v1/feedback", json={  # only her id: found through her other rows
            "channel": "kiosk", "customer": {"id": CUSTOMER_ID}, "location": "门店-上海徐汇", "touchpoint": "exit",
            "rating": {"scale": "mot", "value": 2}})
        assert kiosk.status_code == 202, kiosk.text
        mail = await http.post("/v1/email", content=email_from_her(), headers={"Content-Type": "message/rfc822"})
        assert mail.status_code == 202, mail.text

    async def alerts_raised() -> bool:
        return await db.fetchval("SELECT count(*) FROM alerts.alerts") == 2 and \
            await db.fetchval("SELECT count(*) FROM alerts.customer_moments") == 4
    await wait_until(alerts_raised, timeout=60, what="her two alerts (the other customer's feedback grouped)")
    web_alert = await db.fetchval("SELECT alert_id FROM alerts.alerts WHERE feedback_id = $1", web.json()["id"])
    async with alerts.client(headers=ADMIN) as http:
        judged = await http.post(f"/v1/alerts/{web_alert}/verdict",  # a verdict keeps a copy of her words
                                 json={"verdict": "correct", "note": f"{NAME}说得对"})
        assert judged.status_code in (200, 201), judged.text
        resolved = await http.post(f"/v1/alerts/{web_alert}/resolve")
        assert resolved.status_code == 200, resolved.text

    def invitation():
        delivered = list(zip(list(smtp.messages), list(smtp.recipients)))  # noqa: B905 - the sink appends as we read
        return next((m for m, rcpt in delivered if EMAIL.lower() in [r.lower() for r in rcpt]), None)
    await wait_until(lambda: invitation() is not None, timeout=60, what="her survey invitation")
    path = urlsplit(link_in(invitation()))._replace(scheme="", netloc="").geturl()
    async with survey.client() as http:
        page = await http.get(path)
        assert page.status_code == 200, page.text
        form = {"t": re.search(r'name="t" value="([^"]+)"', page.text).group(1),
                "submission_id": re.search(r'name="submission_id" value="([^"]+)"', page.text).group(1),
                "lang": "zh-CN", "q.satisfaction": "-2", "q.comment": f"{NAME}：还是没有人联系我，13912345678"}
        answered = await http.post("/s/recovery/responses", data=form)
        assert answered.status_code == 200, answered.text

    async def reopened_and_settled() -> bool:
        status = await db.fetchval("SELECT status FROM alerts.alerts WHERE alert_id = $1", web_alert)
        facts = await db.fetchval("SELECT count(*) FROM reporting.feedback_facts WHERE scored_at IS NOT NULL")
        return status == "reopened" and facts == 5 and await settled(db)
    await wait_until(reopened_and_settled, timeout=60, what="her negative answer reopening the alert, all relayed")


async def _what_was_stored_before(hits: list) -> None:
    """The search finds her where she was stored, encoded forms included (so its silence later means something)."""
    places = {(h.schema, h.table) for h in hits if h.needle != OTHER_NAME}
    assert {("alerts", "alerts"), ("alerts", "alert_feedback"), ("alerts", "notifications"), ("alerts", "mail_queue"),
            ("alerts", "alert_verdicts"),
            ("survey", "survey_requests"), ("survey", "survey_responses"), ("survey", "mail_queue")} <= places, places
    in_invitation = {h.how for h in hits if (h.schema, h.table, h.needle) == ("survey", "mail_queue", NAME)}
    assert in_invitation == {"mail"}, "her name is in the invitation only encoded (RFC 2047, base64 / QP)"
    assert not any(h.schema == "intake" for h in hits), "intake keeps the sender as a pseudonym only"


async def _what_each_service_reports(answer: dict) -> None:
    assert set(answer["services"]) == set(SERVICES) and answer["waiting_for"] == []
    assert answer["contacts"] == {"email": 1, "phone": 1}
    alerts, survey = answer["services"]["alerts"]["erased"], answer["services"]["survey"]["erased"]
    assert alerts["alerts"] == 2 and alerts["customer_moments"] == 4  # web, email, kiosk (by her id), survey answer
    assert alerts["alert_feedback"] == 3 and alerts["notifications"] >= 3
    assert alerts["mail_queue"] >= alerts["notifications"]  # one mail per manager of each notification
    assert alerts["alert_verdicts"] == 1
    assert (survey["survey_requests"], survey["survey_responses"], survey["mail_queue"]) == (1, 1, 1)
    assert survey["suppressions"] >= 1
    assert answer["services"]["intake"]["erased"]["email_messages"] == 1
    assert answer["services"]["reporting"]["erased"] == {"outbox": 0, "outbox_dead_letters": 0}


async def _only_the_register_keeps_pseudonyms(db: asyncpg.Connection) -> None:
    """Her pseudonyms stay only where an erasure must keep them: the erased customers' register (for
    PROCESSED_EVENTS_RETENTION_DAYS) and survey's suppression list (for good)."""
    pseudonyms = [pseudonym(KEY, kind, value) for kind, value in
                  (("email", EMAIL), ("phone", PHONE), ("id", CUSTOMER_ID))]
    places = {(h.schema, h.table) for h in await search(db, [Needle(p) for p in pseudonyms])}
    assert places <= {(s, "erased_subjects") for s in SERVICES} | {("survey", "suppressions")}, places
    assert ("alerts", "erased_subjects") in places, "alerts remembers every contact it found, the id too"
    assert await db.fetchval("SELECT true FROM alerts.erased_subjects WHERE subject = $1", pseudonyms[2])


async def _a_replay_does_nothing_more(service_env: dict, db: asyncpg.Connection, answer: dict) -> None:
    reports = await db.fetch("SELECT * FROM reporting.erasure_reports ORDER BY service")
    applied = {s: await db.fetchrow(f"SELECT * FROM {s}.erasures") for s in SERVICES}
    replay = Envelope.new(ERASURE_REQUESTED, ErasureRequested(
        erasure_id=answer["id"], subjects=[pseudonym(KEY, "email", EMAIL)],
        requested_at=datetime.fromisoformat(answer["requested_at"])), source="/keymoment/reporting",
        key=f"erasure:{answer['id']}")
    await publish(service_env, replay)
    await wait_until(lambda: processed_everywhere(db, replay.id), timeout=30, what="the replay consumed everywhere")
    assert await db.fetch("SELECT * FROM reporting.erasure_reports ORDER BY service") == reports
    assert {s: await db.fetchrow(f"SELECT * FROM {s}.erasures") for s in SERVICES} == applied


async def _late_events_are_dropped(service_env: dict, db: asyncpg.Connection, answer: dict) -> None:
    """Her events from before the erasure still on Kafka (a consumer behind, a replayed dead letter)
    do not bring her back."""
    before = datetime.fromisoformat(answer["requested_at"]) - timedelta(minutes=5)
    late = FeedbackReceived(id=str(uuid.uuid4()), channel="web", customer=CUSTOMER, **PLACE, received_at=before,
                            source="test", text=f"我叫{NAME}，太差了，我要投诉！", rating={"scale": "mot", "value": -3})
    request = SurveyRequested(request_id=str(uuid.uuid4()), alert_id="alert-late", customer=CUSTOMER,
                              requested_at=before)
    events = [Envelope.new(FEEDBACK_RECEIVED, late, source="/keymoment/intake", key=late.partition_key(KEY)),
              Envelope.new(SURVEY_REQUESTED, request, source="/keymoment/alerts", key="alert:alert-late")]
    await publish(service_env, *events)
    await wait_until(lambda: processed_everywhere(db, events[0].id, ("alerts",)), timeout=30, what="late feedback")
    await wait_until(lambda: processed_everywhere(db, events[1].id, ("survey",)), timeout=30, what="late request")
    assert not await db.fetchval("SELECT true FROM alerts.alert_feedback WHERE feedback_id = $1", late.id)
    assert not await db.fetchval("SELECT true FROM survey.survey_requests WHERE request_id = $1", request.request_id)
