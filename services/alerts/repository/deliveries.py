"""The notification rows' delivery states, moved by the sender (see ``sender.py`` and
migration 0001). Every time comes from the caller."""

from __future__ import annotations

from datetime import datetime

import asyncpg

NOTIFY_CHANNEL = "keymoment_alerts_notifications"
"""Notified when a pending notification is committed: wakes the sender."""


class NotificationDeliveries:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def claim_notifications(self, *, now: datetime, limit: int, worker: str) -> list[asyncpg.Record]:
        """Move due pending notifications to 'sending' (committed before any SMTP traffic)."""
        return await self.conn.fetch(
            """UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1, claimed_at = $1,
                      claimed_by = $3
               WHERE notification_id IN (
                   SELECT notification_id FROM notifications
                   WHERE status = 'pending' AND next_attempt_at <= $1
                   ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
               RETURNING n.notification_id, n.alert_id, n.kind, n.level, n.recipients, n.subject, n.body_text,
                         n.body_html, n.message_id, n.attempts, n.created_at""",
            now, limit, worker,
        )

    async def mark_sent(self, notification_id: str, *, at: datetime) -> None:
        await self.conn.execute(
            "UPDATE notifications SET status = 'sent', sent_at = $2, last_error = NULL WHERE notification_id = $1",
            notification_id, at,
        )

    async def mark_retry(self, notification_id: str, *, error: str, next_attempt_at: datetime | None) -> None:
        """Back to pending at ``next_attempt_at``, or failed for good when None."""
        await self.conn.execute(
            """UPDATE notifications SET status = CASE WHEN $3::timestamptz IS NULL THEN 'failed' ELSE 'pending' END,
                      last_error = $2, next_attempt_at = coalesce($3, next_attempt_at)
               WHERE notification_id = $1""",
            notification_id, error[:1000], next_attempt_at,
        )

    async def mark_uncertain(self, notification_id: str, *, error: str) -> None:
        await self.conn.execute(
            "UPDATE notifications SET status = 'uncertain', last_error = $2 WHERE notification_id = $1",
            notification_id, error[:1000],
        )

    async def settle_stale_sending(self, *, claimed_before: datetime, resend: bool, now: datetime) -> list[str]:
        """Notifications left 'sending' by a process that died mid-send: the SMTP outcome is unknown."""
        rows = await self.conn.fetch(
            """UPDATE notifications SET status = CASE WHEN $2 THEN 'pending' ELSE 'uncertain' END,
                      next_attempt_at = $3,
                      last_error = 'process stopped during the SMTP exchange; delivery unknown'
               WHERE status = 'sending' AND claimed_at < $1 RETURNING notification_id""",
            claimed_before, resend, now,
        )
        return [r["notification_id"] for r in rows]

    async def release_claims(self, *, worker: str, ids: list[str]) -> None:
        """Give back claimed notifications this process never started sending (graceful stop)."""
        await self.conn.execute(
            """UPDATE notifications SET status = 'pending', attempts = attempts - 1
               WHERE status = 'sending' AND claimed_by = $1 AND notification_id = ANY($2::text[])""",
            worker, ids,
        )
