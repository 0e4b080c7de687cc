"""Upgrading from the invitation sender that kept its state in survey_requests:
nothing it had not delivered is lost, nothing it delivered is sent again."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import asyncpg
import pytest

from services.survey import invitations
from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared.db import migrate
from tests.integration.survey.support import CollectingSmtp, SmtpServer
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

MIGRATIONS = Path(invitations.__file__).parent / "migrations"
SENDER = "Keymoment 客户关怀 <care@keymoment.example>"

LEGACY = {  # request id -> (delivery_status, email, attempts, message_id, last_error)
    "r-pending": ("pending", "li.wei@example.cn", 0, None, None),
    "r-sending": ("sending", "wang.fang@example.cn", 1, None, None),  # in flight when the old sender stopped
    "r-failed": ("failed", "zhao.lei@example.cn", 6, None, "SMTP unreachable"),  # given up after an outage
    "r-sent": ("sent", "chen.jing@example.cn", 1, "<survey.legacy@keymoment.example>", None),
    "r-unsendable": ("unsendable", None, 0, None, None),
}


def old_message_id(request_id: str) -> str:
    """The Message-ID the old sender gave an invitation (a resend must keep it)."""
    return f"<survey.{hashlib.sha256(request_id.encode()).hexdigest()[:32]}@keymoment.example>"


async def test_invitations_the_old_sender_had_not_delivered_are_sent_after_the_upgrade(
        service_env, database_url, tmp_path):
    for path in sorted(MIGRATIONS.glob("000[1-4]_*.sql")):  # the schema as the old code left it
        shutil.copy(path, tmp_path / path.name)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="survey", directory=tmp_path)
        for request_id, (state, email, attempts, message_id, error) in LEGACY.items():
            customer = '{"name": "客户"' + (f', "email": "{email}"' if email else "") + "}"
            await conn.execute(
                """INSERT INTO survey.survey_requests (request_id, kind, survey_id, customer, language, requested_at,
                       delivery_status, attempts, message_id, last_error, sent_at)
                   VALUES ($1, 'recovery', 'recovery', $2::jsonb, 'zh-CN', now(), $3, $4, $5, $6,
                           CASE WHEN $3 = 'sent' THEN now() END)""",
                request_id, customer, state, attempts, message_id, error)
    finally:
        await conn.close()

    with SmtpServer(CollectingSmtp()) as smtp:
        settings = SurveySettings(**service_env, smtp_port=smtp.port, smtp_from=SENDER)
        async with running(create_app(settings)) as svc:
            async def delivered() -> bool:
                async with svc.runtime.pool.acquire() as c:
                    states = {r: (await invitations.delivery(c, r)).state for r in LEGACY}
                return states == {"r-pending": "sent", "r-sending": "sent", "r-failed": "sent", "r-sent": "sent",
                                  "r-unsendable": "unsendable"}

            await wait_until(delivered, timeout=20, what="the legacy invitations delivered")
            async with svc.runtime.pool.acquire() as c:
                backlog = await c.fetchval("SELECT count(*) FROM survey_invitation_backlog")
                components = await c.fetch("SELECT component, version FROM schema_migrations ORDER BY 1, 2")
                kept = (await invitations.delivery(c, "r-sent")).mail
            async with svc.client() as http:
                metrics = (await http.get("/metrics")).text
    assert sorted(zip(smtp.message_ids(), (r[0] for r in smtp.recipients), strict=True)) == sorted([
        (old_message_id("r-pending"), "li.wei@example.cn"),
        (old_message_id("r-sending"), "wang.fang@example.cn"),
        (old_message_id("r-failed"), "zhao.lei@example.cn"),
    ]), "each undelivered invitation once, with the Message-ID of its earlier attempts; the sent one not again"
    assert backlog == 0
    assert ("mail", 1) in {(r["component"], r["version"]) for r in components}
    assert ("service", 5) in {(r["component"], r["version"]) for r in components}
    assert (kept.message_id, kept.attempts, kept.recipients) == (
        "<survey.legacy@keymoment.example>", 1, ("chen.jing@example.cn",))
    assert 'keymoment_survey_invitations{state="sent"} 4.0' in metrics
    assert 'keymoment_survey_invitations{state="unsendable"} 1.0' in metrics
    assert 'keymoment_mail_oldest_pending_seconds{purpose="survey_invitation"} 0.0' in metrics
