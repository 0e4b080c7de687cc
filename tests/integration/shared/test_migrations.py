"""The migration runner against real PostgreSQL."""

import asyncio

import asyncpg
import pytest

from shared.db import MigrationError, migrate


@pytest.fixture
def migrations(tmp_path):
    (tmp_path / "0001_create_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (tmp_path / "0002_add_name.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    return tmp_path


async def test_applies_in_order_once_and_records_them(database_url, migrations):
    conn = await asyncpg.connect(database_url)
    try:
        first = await migrate(conn, schema="svc", directory=migrations)
        again = await migrate(conn, schema="svc", directory=migrations)
        cols = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_schema='svc' AND table_name='things'"
        )
        recorded = await conn.fetch("SELECT component, version FROM svc.schema_migrations ORDER BY 1, 2")
    finally:
        await conn.close()
    assert first == ["plumbing/0001", "plumbing/0002", "plumbing/0003", "service/0001", "service/0002"]
    assert again == []
    assert {c["column_name"] for c in cols} == {"id", "name"}
    assert [(r["component"], r["version"]) for r in recorded] == [
        ("plumbing", 1), ("plumbing", 2), ("plumbing", 3), ("service", 1), ("service", 2)
    ]


async def test_concurrent_starts_apply_each_migration_once(database_url, migrations):
    conns = [await asyncpg.connect(database_url) for _ in range(3)]
    try:
        results = await asyncio.gather(*(migrate(c, schema="svc", directory=migrations) for c in conns))
    finally:
        for c in conns:
            await c.close()
    assert sorted(len(r) for r in results) == [0, 0, 5]


async def test_a_failing_migration_rolls_back_and_is_not_recorded(database_url, migrations):
    (migrations / "0003_break.sql").write_text("ALTER TABLE things ADD COLUMN x int; SELECT 1/0;")
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(asyncpg.DivisionByZeroError):
            await migrate(conn, schema="svc", directory=migrations)
        versions = await conn.fetchval("SELECT max(version) FROM svc.schema_migrations WHERE component='service'")
        cols = await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_schema='svc' AND column_name='x'"
        )
    finally:
        await conn.close()
    assert versions == 2 and cols == 0


async def test_bad_file_names_and_newer_databases_are_refused(database_url, migrations, tmp_path_factory):
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="svc", directory=migrations)
        older = tmp_path_factory.mktemp("older")
        (older / "0001_create_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
        with pytest.raises(MigrationError, match="the code is older than the database"):
            await migrate(conn, schema="svc", directory=older)
        (older / "create_more.sql").write_text("SELECT 1;")
        with pytest.raises(MigrationError, match="must look like 0001_create_things.sql"):
            await migrate(conn, schema="svc2", directory=older)
    finally:
        await conn.close()
