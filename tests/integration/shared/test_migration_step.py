"""MIGRATE_ON_START=false: the migration step (`keymoment migrate SERVICE`, the Kubernetes
Job) applies the migrations; services wait for their schema instead of migrating it, and a
schema newer than the code (a rollback) does not stop them."""

import asyncio

import asyncpg
import pytest

from shared.db import MigrationError, migrate, pending_migrations, wait_for_migrations


@pytest.fixture
def migrations(tmp_path):
    (tmp_path / "0001_create_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    return tmp_path


async def test_a_service_waits_for_the_migration_step(database_url, migrations):
    conn, step = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        assert await pending_migrations(conn, schema="waits", directory=migrations) == [
            "plumbing/0001", "plumbing/0002", "plumbing/0003", "service/0001"
        ]
        waiting = asyncio.create_task(wait_for_migrations(conn, schema="waits", directory=migrations, timeout=30))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await migrate(step, schema="waits", directory=migrations)
        await asyncio.wait_for(waiting, 20)
        assert await pending_migrations(conn, schema="waits", directory=migrations) == []
    finally:
        await conn.close()
        await step.close()


async def test_gives_up_naming_the_missing_migrations(database_url, migrations):
    conn = await asyncpg.connect(database_url)
    try:
        with pytest.raises(MigrationError, match=r"schema never lacks migrations .*service/0001.*keymoment migrate"):
            await wait_for_migrations(conn, schema="never", directory=migrations, timeout=1)
        tables = await conn.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'never'")
    finally:
        await conn.close()
    assert tables == 0, "waiting must not migrate"


async def test_a_rolled_back_release_runs_on_the_newer_schema(database_url, migrations, tmp_path_factory):
    newer = tmp_path_factory.mktemp("newer")
    (newer / "0001_create_things.sql").write_text((migrations / "0001_create_things.sql").read_text())
    (newer / "0002_add_name.sql").write_text("ALTER TABLE things ADD COLUMN name text;")
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="rolled", directory=newer)
        assert await pending_migrations(conn, schema="rolled", directory=migrations) == []
        await wait_for_migrations(conn, schema="rolled", directory=migrations, timeout=1)
    finally:
        await conn.close()
