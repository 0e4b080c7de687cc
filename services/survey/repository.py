"""The only module of survey with SQL."""

from __future__ import annotations

import asyncpg

from shared.contracts import SurveyRequested


async def add_request(conn: asyncpg.Connection, req: SurveyRequested) -> None:
    await conn.execute(
        """INSERT INTO survey_requests (request_id, kind, alert_id, customer, language, requested_at)
           VALUES ($1, $2, $3, $4::jsonb, $5, $6)
           ON CONFLICT (request_id) DO NOTHING""",
        req.request_id,
        req.kind,
        req.alert_id,
        req.customer.model_dump_json(exclude_none=True),
        req.language,
        req.requested_at,
    )
