"""The only module of reporting with SQL."""

from __future__ import annotations

import asyncpg

from shared.contracts import FeedbackReceived


async def add_feedback(conn: asyncpg.Connection, fb: FeedbackReceived) -> None:
    await conn.execute(
        """INSERT INTO feedback_facts
               (feedback_id, channel, location, touchpoint, rating_scale, rating_value, occurred_at, received_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
           ON CONFLICT (feedback_id) DO NOTHING""",
        fb.id,
        fb.channel.value,
        fb.location,
        fb.touchpoint,
        fb.rating.scale.value if fb.rating else None,
        fb.rating.value if fb.rating else None,
        fb.occurred_at,
        fb.received_at,
    )
