"""The suppression list holds pseudonyms only, keeps the first reason and answers for many at once."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from services.survey import suppressions
from services.survey.settings import SurveySettings
from shared.db import migrate

KEY = b"test-privacy-key"
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def test_suppressions_are_pseudonymous_idempotent_and_first_reason_wins(database_url):
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="survey", directory=Path(suppressions.__file__).parent / "migrations",
                      components=SurveySettings.migration_components())
        await conn.execute("SET search_path TO survey")
        assert await suppressions.suppress(conn, KEY, "Li.Wei@Example.CN", reason="unsubscribed", at=AT, source="nps")
        assert not await suppressions.suppress(conn, KEY, "li.wei@example.cn", reason="bounced", at=AT)
        assert await suppressions.is_suppressed(conn, KEY, "LI.WEI@example.cn") == "unsubscribed"
        assert await suppressions.is_suppressed(conn, KEY, "wang.fang@example.cn") is None
        await suppressions.suppress(conn, KEY, "wang.fang@example.cn", reason="erased", at=AT, source="erasure")
        assert await suppressions.suppressed(conn, KEY, ["li.wei@example.cn", "wang.fang@example.cn", "x@y.cn"]) == {
            "li.wei@example.cn": "unsubscribed", "wang.fang@example.cn": "erased"}
        stored = " ".join(str(v) for r in await conn.fetch("SELECT * FROM suppressions") for v in r.values())
        assert "li.wei" not in stored.lower() and "wang.fang" not in stored and "example" not in stored
    finally:
        await conn.close()
