"""PRIVACY.md lists every table of every service's schema: a table added without saying what
personal data it holds, how long it stays and what an erasure does to it fails here."""

from __future__ import annotations

import re
from pathlib import Path

import asyncpg
import pytest

from keymoment.serve import SERVICES, _service
from shared.db import migrate

pytestmark = pytest.mark.integration

DOC = Path(__file__).resolve().parents[3] / "PRIVACY.md"


def documented() -> dict[str, set[str]]:
    """Per ``### <service>`` section of the inventory, the tables its rows name in their first cell."""
    out: dict[str, set[str]] = {}
    service = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            service = None
        if match := re.match(r"^### (\w+)$", line):
            service = match.group(1) if match.group(1) in SERVICES else None
        elif service and line.startswith("| `"):
            out.setdefault(service, set()).update(re.findall(r"`(\w+)`", line.split("|")[1]))
    return out


async def test_every_table_is_in_the_inventory(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        actual: dict[str, set[str]] = {}
        for name in SERVICES:
            app_module, settings_cls = _service(name)
            settings = settings_cls(keymoment_env="test", database_url=database_url)
            await migrate(conn, schema=settings.schema, directory=Path(app_module.__file__).parent / "migrations",
                          components=settings.migration_components())
            rows = await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
                settings.schema)
            actual[name] = {r["table_name"] for r in rows} - {"schema_migrations"}
    finally:
        await conn.close()
    listed = documented()
    assert set(listed) == set(SERVICES)
    missing = {s: sorted(actual[s] - listed[s]) for s in SERVICES if actual[s] - listed[s]}
    gone = {s: sorted(listed[s] - actual[s]) for s in SERVICES if listed[s] - actual[s]}
    assert not missing, f"tables not in PRIVACY.md's inventory: {missing}"
    assert not gone, f"PRIVACY.md lists tables that do not exist: {gone}"
