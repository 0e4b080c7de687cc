"""The plumbing tests' database: the crash tests' schema (an ``effects`` table beside the plumbing tables)."""

from pathlib import Path

import asyncpg
import pytest

from shared.db import create_pool, migrate

HERE = Path(__file__).parent
SCHEMA = "crashtest"


@pytest.fixture
async def pool(database_url):
    conn = await asyncpg.connect(database_url)
    await migrate(conn, schema=SCHEMA, directory=HERE / "migrations")
    await conn.close()
    pool = await create_pool(database_url, schema=SCHEMA)
    yield pool
    await pool.close()
