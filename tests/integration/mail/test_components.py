"""The mail queue as an opt-in migration component: brought by the MailSettings
fragment, recorded under its own name, applied before the service's migrations,
and known to the migration step (`keymoment migrate`, MIGRATE_ON_START=false) too."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg
import pytest

from services.alerts.settings import AlertsSettings
from services.intake.settings import IntakeSettings
from services.reporting.settings import ReportingSettings
from services.survey.settings import SurveySettings
from shared.db import MigrationError, migrate, pending_migrations
from shared.mail.settings import MAIL_COMPONENT
from shared.privacy import PRIVACY_COMPONENT

pytestmark = pytest.mark.integration


async def test_a_component_runs_between_plumbing_and_the_service_and_is_recorded_apart(database_url, tmp_path):
    (tmp_path / "0001_create_things.sql").write_text(
        "CREATE TABLE things (id int PRIMARY KEY);"
        "INSERT INTO mail_queue (mail_id, purpose, ref, message_id, recipients, message, state, next_attempt_at,"
        " created_at) VALUES ('m', 'p', 'r', '<m@x>', '{a@x.cn}', 'x', 'pending', now(), now());"
    )
    conn = await asyncpg.connect(database_url)
    try:
        applied = await migrate(conn, schema="svc", directory=tmp_path, components=[MAIL_COMPONENT])
        again = await migrate(conn, schema="svc", directory=tmp_path, components=[MAIL_COMPONENT])
        with pytest.raises(MigrationError, match="older than the database"):
            await migrate(conn, schema="svc", directory=tmp_path)  # code that no longer asks for the queue
        with pytest.raises(MigrationError):
            await migrate(conn, schema="svc2", directory=tmp_path, components=[("service", MAIL_COMPONENT[1])])
        other = await migrate(conn, schema="plain", directory=tmp_path.parent / "none")
        plain_tables = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'plain' AND table_name = 'mail_queue'")
    finally:
        await conn.close()
    assert applied == ["plumbing/0001", "plumbing/0002", "plumbing/0003", "mail/0001", "mail/0002", "service/0001"] and again == []
    assert other == ["plumbing/0001", "plumbing/0002", "plumbing/0003"] and plain_tables == 0, "services that don't ask get no queue"


def test_the_settings_fragment_brings_the_component():
    # every service gets the privacy component (its erasures); the services that send mail the queue
    for cls in (SurveySettings, AlertsSettings):
        assert set(cls.migration_components()) == {PRIVACY_COMPONENT, MAIL_COMPONENT}, cls
    for cls in (IntakeSettings, ReportingSettings):
        assert cls.migration_components() == [PRIVACY_COMPONENT], cls


async def test_a_service_waiting_for_the_migration_step_waits_for_the_component_too(database_url, tmp_path):
    (tmp_path / "0001_create_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="svc", directory=tmp_path)  # a migration step that knew no component
        without = await pending_migrations(conn, schema="svc", directory=tmp_path)
        with_mail = await pending_migrations(conn, schema="svc", directory=tmp_path, components=[MAIL_COMPONENT])
    finally:
        await conn.close()
    assert without == [] and with_mail == ["mail/0001", "mail/0002"]


async def test_keymoment_migrate_applies_the_components_the_service_asked_for(database_url):
    # production: the migration step is given DATABASE_URL and no other secret
    env = {**os.environ, "KEYMOMENT_ENV": "production", "DATABASE_URL": database_url}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "keymoment", "migrate", "survey", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, output.decode()
    assert "mail/0001" in output.decode() and "service/0005" in output.decode()
    conn = await asyncpg.connect(database_url)
    try:
        recorded = {(r["component"], r["version"]) for r in await conn.fetch(
            "SELECT component, version FROM survey.schema_migrations")}
    finally:
        await conn.close()
    assert ("mail", 1) in recorded and ("service", 5) in recorded
