"""Notifications the sender before the shared mail queue had not delivered (pending, being
sent, uncertain or failed at the upgrade: migration 0002 lists them in ``notification_backlog``),
queued once at start as they were rendered then: one mail to all their recipients, with their
Message-ID, so a copy that did arrive before collapses with this one. Their links date from
before links named a recipient and a state: the link page answers them with a request to use a
newer mail or the API. Replicas starting together share the work."""

from __future__ import annotations

import logging

import asyncpg

from services.alerts.emails import PURPOSE
from shared.clock import Clock
from shared.mail import queue
from shared.mail.message import InvalidAddress, build_message, normalize_address
from shared.mail.queue import OutgoingMail

logger = logging.getLogger(__name__)


def _addresses(recipients: list[str]) -> list[str]:
    found = []
    for recipient in recipients:
        try:
            found.append(normalize_address(recipient))
        except InvalidAddress as exc:
            logger.warning("notification recipient cannot be mailed", extra={"reason": str(exc).split(":")[0]})
    return found


async def queue_backlog(pool: asyncpg.Pool, *, sender: str, clock: Clock, batch: int = 200) -> int:
    """Queue the backlog's notifications on the mail queue and empty it; returns how many."""
    done = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """SELECT b.notification_id, b.message_id, b.body_text, b.body_html, n.alert_id, n.recipients,
                          n.subject, n.created_at
                   FROM notification_backlog b JOIN notifications n USING (notification_id)
                   WHERE b.notification_id IN (SELECT notification_id FROM notification_backlog
                                               ORDER BY notification_id LIMIT $1 FOR UPDATE SKIP LOCKED)""",
                batch,
            )
            if not rows:
                break
            mails = []
            for r in rows:
                to = _addresses(list(r["recipients"]))
                if to:
                    mails.append(OutgoingMail(
                        mail_id=f"alert-notification:{r['notification_id']}", purpose=PURPOSE,
                        ref=r["notification_id"], message_id=r["message_id"], recipients=tuple(to),
                        message=build_message(
                            sender=sender, to=to, subject=r["subject"], text=r["body_text"], html=r["body_html"],
                            message_id=r["message_id"], date=r["created_at"], language="zh-CN, en",
                            headers=[("X-Keymoment-Alert", r["alert_id"])],
                        ),
                    ))
            await queue.enqueue(conn, mails, now=clock.now())
            await conn.execute("DELETE FROM notification_backlog WHERE notification_id = ANY ($1::text[])",
                               [r["notification_id"] for r in rows])
        done += len(rows)
    if done:
        logger.info("notifications from before the mail queue queued", extra={"notifications": done})
    return done
