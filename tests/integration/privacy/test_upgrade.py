"""Rows written before customers were keyed by pseudonyms get their pseudonyms at start: no plaintext
contact stays a key, and the customer is still found (grouping, history, erasure) afterwards."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from services.alerts import privacy as alerts_privacy
from services.alerts.settings import AlertsSettings
from services.intake import privacy as intake_privacy
from services.intake.email import repository as email_repository
from services.intake.settings import IntakeSettings
from services.survey import privacy as survey_privacy
from services.survey.settings import SurveySettings
from shared.db import create_pool, migrate
from shared.privacy import pseudonym

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
KEY = b"upgrade-test-key"
AT = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
LI = {"id": "C-7", "name": "李伟", "email": "Li.Wei@Example.cn", "phone": "+86 138 0013 8000"}


async def _migrate(conn: asyncpg.Connection, service: str, settings_cls: type, *, only: str | None = None,
                   into: Path | None = None) -> None:
    directory = ROOT / "services" / service / "migrations"
    if only is not None:  # the schema as the code before the upgrade left it
        for path in sorted(directory.glob(only)):
            shutil.copy(path, into / path.name)
        await migrate(conn, schema=service, directory=into, components=[
            c for c in settings_cls.migration_components() if c[0] != "privacy"])
    else:
        await migrate(conn, schema=service, directory=directory, components=settings_cls.migration_components())


async def test_alerts_rows_get_pseudonyms(database_url, tmp_path):
    conn = await asyncpg.connect(database_url)
    try:
        await _migrate(conn, "alerts", AlertsSettings, only="0001_*.sql", into=tmp_path)
        await conn.execute(
            """INSERT INTO alerts.alerts (alert_id, feedback_id, severity, status, channel, customer_key, customer,
                   summary, route, team, recipients, raised_at, last_feedback_at, updated_at)
               VALUES ('a-1', 'f-1', -2, 'open', 'web', 'id:C-7', $1::jsonb, 'slow', 'r', 't', '{m@example.com}',
                       $2, $2, $2),
                      ('a-2', 'f-9', -1, 'open', 'kiosk', NULL, NULL, 'queue', 'r', 't', '{m@example.com}', $2, $2, $2)""",
            json.dumps(LI), AT)
        await conn.execute(
            """INSERT INTO alerts.alert_feedback (feedback_id, alert_id, role, mot, confidence, cues, escalation,
                   channel, text, received_at, linked_at)
               VALUES ('f-1', 'a-1', 'raised', -2, 0.9, '[]', '[]', 'web', 'slow', $1, $1),
                      ('f-2', 'a-1', 'grouped', -2, 0.9, '[]', '[]', 'email', 'again', $1, $1),
                      ('f-9', 'a-2', 'raised', -1, 0.9, '[]', '[]', 'kiosk', 'queue', $1, $1)""", AT)
        await conn.execute(
            """INSERT INTO alerts.customer_moments (customer_key, feedback_id, mot, channel, at)
               VALUES ('id:C-7', 'f-1', -2, 'web', $1), ('email:li.wei@example.cn', 'f-2', -2, 'email', $1),
                      ('phone:+8613800138000', 'f-3', 1, 'phone', $1)""", AT)
        await _migrate(conn, "alerts", AlertsSettings)
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema="alerts", min_size=1, max_size=2)
    try:
        done = await alerts_privacy.pseudonymise_backlog(pool, KEY, batch=2)
        assert done == {"alerts": 2, "customer_moments": 3, "alert_feedback": 3}
        assert await alerts_privacy.pseudonymise_backlog(pool, KEY) == {"alerts": 0, "customer_moments": 0,
                                                                         "alert_feedback": 0}
        ids = {kind: pseudonym(KEY, kind, LI[kind]) for kind in ("id", "email", "phone")}
        alerts = {r["alert_id"]: r for r in await pool.fetch("SELECT alert_id, customer_key, subjects FROM alerts")}
        assert (alerts["a-1"]["customer_key"], alerts["a-1"]["subjects"]) == (ids["id"], [ids["id"], ids["email"],
                                                                                           ids["phone"]])
        assert (alerts["a-2"]["customer_key"], alerts["a-2"]["subjects"]) == (None, [])
        moments = {r["feedback_id"]: (r["customer_key"], r["subjects"]) for r in
                   await pool.fetch("SELECT feedback_id, customer_key, subjects FROM customer_moments")}
        assert moments == {"f-1": (ids["id"], [ids["id"]]), "f-2": (ids["email"], [ids["email"]]),
                           "f-3": (ids["phone"], [ids["phone"]])}
        links = {r["feedback_id"]: r["subjects"] for r in await pool.fetch("SELECT feedback_id, subjects FROM alert_feedback")}
        # the raising one from its alert, the grouped one from its moment, the anonymous one none
        assert links == {"f-1": alerts["a-1"]["subjects"], "f-2": [ids["email"]], "f-9": []}
    finally:
        await pool.close()


async def test_survey_requests_from_before_contact_keys_get_them(database_url, tmp_path):
    conn = await asyncpg.connect(database_url)
    try:
        await _migrate(conn, "survey", SurveySettings, only="000[1-6]_*.sql", into=tmp_path)
        await conn.execute(
            """INSERT INTO survey.survey_requests (request_id, kind, survey_id, customer, requested_at)
               VALUES ('r-1', 'recovery', 'recovery', $1::jsonb, $2), ('r-2', 'recovery', 'recovery', '{}', $2)""",
            json.dumps(LI), AT)
        await _migrate(conn, "survey", SurveySettings)
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema="survey", min_size=1, max_size=2)
    try:
        assert await survey_privacy.pseudonymise_backlog(pool, KEY, batch=1) == 1  # r-2 names no contact
        assert await survey_privacy.pseudonymise_backlog(pool, KEY) == 0
        rows = {r["request_id"]: (r["contact_keys"], r["contact_keys_pending"]) for r in await pool.fetch(
            "SELECT request_id, contact_keys, contact_keys_pending FROM survey_requests")}
        assert rows == {"r-1": ([pseudonym(KEY, "id", "C-7"), pseudonym(KEY, "email", LI["email"]),
                                 pseudonym(KEY, "phone", LI["phone"])], False), "r-2": ([], False)}
    finally:
        await pool.close()


async def test_intake_mail_records_keep_their_sender_as_a_pseudonym(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        await _migrate(conn, "intake", IntakeSettings)
        await conn.execute(  # written before: the sender's address; one record also written after, as a pseudonym
            """INSERT INTO intake.email_messages (message_id, sender, status, via, size_bytes, feedback_id)
               VALUES ('<1@x>', 'li.wei@example.cn', 'accepted', 'smtp', 10, 'f-1'),
                      ('<2@x>', 'li.wei@example.cn', 'accepted', 'smtp', 10, 'f-2'),
                      ('<2@x>', $1, 'accepted', 'smtp', 10, 'f-2'),
                      ('<3@x>', '', 'rejected', 'http', 10, NULL)""",
            pseudonym(KEY, "email", "li.wei@example.cn"))
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema="intake", min_size=1, max_size=2)
    try:
        assert await intake_privacy.pseudonymise_senders(pool, KEY, batch=1) == 2
        assert await intake_privacy.pseudonymise_senders(pool, KEY) == 0
        senders = sorted((r["message_id"], r["sender"]) for r in await pool.fetch(
            "SELECT message_id, sender FROM email_messages"))
        p = pseudonym(KEY, "email", "li.wei@example.cn")
        assert senders == [("<1@x>", p), ("<2@x>", p), ("<3@x>", "")]
        # a re-delivery from the same sender is still recognised
        async with pool.acquire() as c:
            assert await email_repository.find(c, "<1@x>", p) is not None
    finally:
        await pool.close()
