"""Intake's migrations go forward only and leave no dead tables."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg

import services.intake
from shared.db import migrate

MIGRATIONS = Path(services.intake.__file__).parent / "migrations"


async def test_an_existing_database_loses_the_dead_intake_info_table(database_url, tmp_path):
    earlier = tmp_path / "migrations"  # the migrations of the release before the drop
    earlier.mkdir()
    for path in MIGRATIONS.glob("*.sql"):
        if path.name != "0003_drop_intake_info.sql":
            shutil.copy(path, earlier)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="intake", directory=earlier)
        await conn.execute("INSERT INTO intake.intake_info VALUES ('placeholder', 'never read')")
        assert await migrate(conn, schema="intake", directory=MIGRATIONS) == ["service/0003"]
        tables = {r["table_name"] for r in await conn.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'intake'")}
    finally:
        await conn.close()
    assert "intake_info" not in tables
    assert {"api_keys", "email_messages", "outbox", "processed_events"} <= tables
