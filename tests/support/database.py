"""A fresh database on the harness's PostgreSQL, dropped afterwards."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg


@contextlib.asynccontextmanager
async def fresh_database(server, prefix: str = "t") -> AsyncIterator[str]:
    """Create a database on ``server`` (an ``EmbeddedPostgres``), yield its DSN, drop it (forcibly) after."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(server.dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield server.dsn(name)
    finally:
        admin = await asyncpg.connect(server.dsn("postgres"))
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
