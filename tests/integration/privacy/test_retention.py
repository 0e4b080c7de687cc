"""Retention of personal data, as the services register it (``runtime.retain``), on their real
schemas: past its days a customer's details and words are cleared (the rows the KPIs need stay) or
the rows deleted; what is younger, or a mail not yet settled, is left alone; a second run changes
nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from services.alerts.app import create_app as create_alerts
from services.alerts.settings import AlertsSettings
from services.survey.app import create_app as create_survey
from services.survey.settings import SurveySettings
from shared.db import create_pool, migrate
from shared.runtime import ServiceRuntime

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
NOW = datetime(2027, 6, 1, 9, 0, tzinfo=UTC)
OLD, RECENT = NOW - timedelta(days=200), NOW - timedelta(days=10)
CUSTOMER = json.dumps({"id": "C-7", "name": "李伟", "email": "li.wei@example.cn"})


async def prune(runtime: ServiceRuntime, database_url: str) -> dict[str, int]:
    s = runtime.settings
    pool = await create_pool(database_url, schema=s.schema, min_size=1, max_size=1)
    try:
        changed: dict[str, int] = {}
        for rule in runtime.retention:
            changed[rule.table] = changed.get(rule.table, 0) + await rule.apply(pool, now=NOW)
        return changed
    finally:
        await pool.close()


async def migrated(create_app, settings) -> tuple[ServiceRuntime, asyncpg.Connection]:  # noqa: ANN001
    """The service's runtime as its app factory builds it (not started), and a connection to its
    freshly migrated database."""
    runtime = create_app(settings).state.runtime
    conn = await asyncpg.connect(settings.dsn())
    await migrate(conn, schema=settings.schema, directory=runtime.migrations, components=settings.migration_components())
    return runtime, conn


async def test_alerts_clears_customers_and_their_words_and_keeps_the_alerts(database_url):
    runtime, conn = await migrated(create_alerts, AlertsSettings(keymoment_env="test", database_url=database_url))
    try:
        for alert_id, at in (("a-old", OLD), ("a-new", RECENT)):
            await conn.execute(
                """INSERT INTO alerts.alerts (alert_id, feedback_id, severity, status, channel, customer_key, customer,
                       summary, route, team, recipients, raised_at, last_feedback_at, updated_at, subjects)
                   VALUES ($1, $1, -2, 'resolved', 'web', 'id:x', $2::jsonb, '李伟说排队太久', 'r', 't',
                           '{m@example.com}', $3, $3, $3, '{id:x}')""", alert_id, CUSTOMER, at)
            await conn.execute(
                """INSERT INTO alerts.alert_feedback (feedback_id, alert_id, role, mot, confidence, cues, escalation,
                       channel, text, received_at, linked_at, subjects)
                   VALUES ($1, $1, 'raised', -2, 0.9, '["排队"]', '[]', 'web', '李伟说排队太久', $2, $2, '{id:x}')""",
                alert_id, at)
            await conn.execute(
                """INSERT INTO alerts.alert_events (alert_id, at, action, actor, note)
                   VALUES ($1, $2, 'raised', 'system', 'route r'), ($1, $2, 'explore', 'm@example.com', '给李伟打了电话')""",
                alert_id, at)
            await conn.execute(
                """INSERT INTO alerts.notifications (notification_id, alert_id, kind, level, seq, recipients, subject,
                       created_at)
                   VALUES ($1, $1, 'raised', 1, 0, '{m@example.com}', '[MOT -2] 李伟说排队太久', $2)""", alert_id, at)
            await conn.execute(  # judged today: goes with its feedback's words all the same
                """INSERT INTO alerts.alert_verdicts (verdict_id, feedback_id, alert_id, verdict, decided_by, decided_at,
                       via, note, text, score)
                   VALUES ($1, $1, $1, 'correct', 'm@example.com', $2, 'api', NULL, '李伟说排队太久', '{}')""",
                alert_id, NOW - timedelta(days=1))
            await conn.execute(
                """INSERT INTO alerts.customer_moments (customer_key, feedback_id, mot, channel, at, subjects)
                   VALUES ('id:x', $1, -2, 'web', $2, '{id:x}')""", alert_id, at)
    finally:
        await conn.close()

    changed = await prune(runtime, database_url)
    assert changed == {"processed_events": 0, "outbox_dead_letters": 0, "alerts": 1, "alert_feedback": 1, "alert_events": 1,
                       "notifications": 1, "alert_verdicts": 1, "customer_moments": 1, "erased_subjects": 0,
                       "mail_queue": 0}
    conn = await asyncpg.connect(database_url)
    try:
        alerts = {r["alert_id"]: r for r in await conn.fetch("SELECT * FROM alerts.alerts")}
        assert (alerts["a-old"]["customer"], alerts["a-old"]["customer_key"], alerts["a-old"]["subjects"],
                alerts["a-old"]["summary"]) == (None, None, [], "web MOT -2")
        assert (alerts["a-old"]["status"], alerts["a-old"]["raised_at"]) == ("resolved", OLD)  # the KPIs keep it
        assert alerts["a-new"]["customer"] is not None and alerts["a-new"]["summary"] == "李伟说排队太久"
        texts = dict(await conn.fetch("SELECT feedback_id, text FROM alerts.alert_feedback"))
        assert texts == {"a-old": None, "a-new": "李伟说排队太久"}
        notes = sorted(tuple(r) for r in await conn.fetch("SELECT alert_id, actor, note FROM alerts.alert_events"))
        assert notes == [("a-new", "m@example.com", "给李伟打了电话"), ("a-new", "system", "route r"),
                         ("a-old", "m@example.com", None), ("a-old", "system", "route r")]
        subjects = dict(await conn.fetch("SELECT notification_id, subject FROM alerts.notifications"))
        assert subjects == {"a-old": "-", "a-new": "[MOT -2] 李伟说排队太久"}  # their mails: MAIL_CONTENT_DAYS
        assert [r[0] for r in await conn.fetch("SELECT feedback_id FROM alerts.customer_moments")] == ["a-new"]
        assert [r[0] for r in await conn.fetch("SELECT feedback_id FROM alerts.alert_verdicts")] == ["a-new"]
    finally:
        await conn.close()
    assert set((await prune(runtime, database_url)).values()) == {0}, "rows anonymised before are left alone"


async def test_survey_clears_customers_text_answers_and_settled_mail(database_url):
    runtime, conn = await migrated(create_survey, SurveySettings(keymoment_env="test", database_url=database_url))
    try:
        for request_id, at in (("r-old", OLD), ("r-new", RECENT)):
            await conn.execute(
                """INSERT INTO survey.survey_requests (request_id, kind, survey_id, customer, requested_at, decided_at,
                                                      contact_keys, context)
                   VALUES ($1, 'recovery', 'recovery', $2::jsonb, $3, $3, '{id:x}', '{"agent": "王芳"}')""",
                request_id, CUSTOMER, at)
            await conn.execute(
                """INSERT INTO survey.survey_responses (response_id, survey_id, survey_version, request_id, answers,
                       feedback_ids, submitted_at)
                   VALUES ($1, 'recovery', 1, $1, '{"satisfaction": -2, "comment": "李伟：还是不行"}', '{}', $2)""",
                request_id, at)
            for state in ("sent", "failed", "pending"):
                await conn.execute(
                    """INSERT INTO survey.mail_queue (mail_id, purpose, ref, message_id, recipients, message, state,
                           next_attempt_at, created_at, last_error, delivered_to)
                       VALUES ($1 || $2, 'survey_invitation', $1, '<' || $1 || $2 || '@x>', '{li.wei@example.cn}',
                               convert_to('To: =?utf-8?b?5p2O5Lyf?= <li.wei@example.cn>', 'UTF8'), $2, $3, $3,
                               CASE WHEN $2 = 'failed' THEN '550 <li.wei@example.cn> unknown' END,
                               CASE WHEN $2 = 'sent' THEN '{li.wei@example.cn}'::text[] ELSE '{}' END)""",
                    request_id, state, at)
    finally:
        await conn.close()

    changed = await prune(runtime, database_url)
    assert changed == {"processed_events": 0, "outbox_dead_letters": 0, "mail_queue": 2, "erased_subjects": 0, "survey_requests": 1,
                       "survey_responses": 1, "survey_drafts": 0, "survey_contacts": 0}
    conn = await asyncpg.connect(database_url)
    try:
        customers = dict(await conn.fetch("SELECT request_id, customer::text FROM survey.survey_requests"))
        assert customers["r-old"] == "{}" and "李伟" in customers["r-new"]
        answers = {r: json.loads(a) for r, a in await conn.fetch("SELECT request_id, answers FROM survey.survey_responses")}
        assert answers == {"r-old": {"satisfaction": -2}, "r-new": {"satisfaction": -2, "comment": "李伟：还是不行"}}
        mail = {r["mail_id"]: r for r in await conn.fetch("SELECT * FROM survey.mail_queue")}
        for mail_id in ("r-oldsent", "r-oldfailed"):  # settled and old: forgotten, the record kept
            m = mail[mail_id]
            assert (m["message"], m["recipients"], m["delivered_to"], m["forgotten_at"]) == (None, [], [], NOW)
            assert m["state"] == mail_id.removeprefix("r-old") and m["message_id"] == f"<{mail_id}@x>"
        assert mail["r-oldfailed"]["last_error"] == "not sent; its content was forgotten"
        assert mail["r-oldpending"]["message"] is not None, "mail not yet sent keeps everything"
        assert all(mail[f"r-new{s}"]["forgotten_at"] is None for s in ("sent", "failed", "pending"))
    finally:
        await conn.close()
    assert set((await prune(runtime, database_url)).values()) == {0}, "rows forgotten before are left alone"
