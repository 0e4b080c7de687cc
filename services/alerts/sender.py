"""The notification sender: mails the ``notifications`` rows the consumer and the
scheduler wrote, with retries and backoff, never twice.

State machine of one row (see migration 0001)::

    pending --claim (committed before any SMTP traffic)--> sending
    sending --250 after DATA--> sent
    sending --refused or unreachable before/at DATA (we know it was not accepted)--> pending (backoff) | failed
    sending --connection lost / timeout *during* DATA, or the process died--> uncertain

Why this never sends twice: a row is claimed (``FOR UPDATE SKIP LOCKED``,
committed) before its SMTP session starts, so no other worker or replica can
take it; a retry only happens when the server *told us* it did not accept the
message (an error reply before or to DATA, or no connection at all). The one
window left is between the server's acceptance and our commit of ``sent``
(or a reply lost on the wire): such a row ends ``uncertain`` and is not resent
unless ``ALERTS_RESEND_UNCERTAIN`` is on (then the resend carries the same
Message-ID, which most mail stores de-duplicate). The residual risk is the
opposite one: an uncertain mail that in fact never arrived; the SLA escalation
(timers in the database) is the safety net for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from email.utils import parseaddr

import aiosmtplib
import asyncpg

from services.alerts import emails
from services.alerts.context import Context
from services.alerts.repository import NOTIFY_CHANNEL, NotificationDeliveries

logger = logging.getLogger(__name__)


class Refused(Exception):
    """The server did not accept the message (we know it was not delivered)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class Unknown(Exception):
    """The DATA exchange broke off: the server may or may not have accepted the message."""


class SmtpSession:
    """One persistent SMTP connection (reconnected on demand) used by one sender worker."""

    def __init__(self, ctx: Context) -> None:
        s = ctx.settings
        self._settings = s
        self._client: aiosmtplib.SMTP | None = None
        self.envelope_from = parseaddr(s.smtp_from)[1] or "keymoment@localhost"

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, timeout=s.alerts_smtp_timeout_seconds,
            start_tls=True if s.smtp_starttls else False,
            username=s.smtp_username, password=s.smtp_password.get_secret_value() if s.smtp_password else None,
        )
        await client.connect()
        return client

    async def close(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.quit(), 2)
            self._client = None

    async def deliver(self, recipients: list[str], message: bytes) -> None:
        """Raises :class:`Refused` (not delivered) or :class:`Unknown` (may be delivered)."""
        try:
            reused = self._client is not None and self._client.is_connected
            if not reused:
                self._client = await self._connect()
            client = self._client
            try:
                # A finished transaction leaves the session ready for the next MAIL: no RSET round trip.
                await client.mail(self.envelope_from)
            except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError,
                    aiosmtplib.SMTPResponseException) as exc:
                if not reused or (isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != 421):
                    raise
                await self.close()  # the server dropped the idle session; nothing was sent yet
                client = self._client = await self._connect()
                await client.mail(self.envelope_from)
            accepted = 0
            refusals = []
            for rcpt in recipients:
                try:
                    await client.rcpt(rcpt)
                    accepted += 1
                except aiosmtplib.SMTPRecipientRefused as exc:
                    refusals.append(f"{exc.code} for a recipient")
            if not accepted:
                raise Refused("every recipient refused: " + "; ".join(refusals), permanent=all(r.startswith("5") for r in refusals))
        except Refused:
            await self.close()
            raise
        except aiosmtplib.SMTPResponseException as exc:
            await self.close()
            raise Refused(f"SMTP {exc.code} before DATA: {exc.message}", permanent=500 <= exc.code < 600) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self.close()
            raise Refused(f"SMTP unreachable before DATA: {exc!r}", permanent=False) from exc
        try:
            await client.data(message)
        except aiosmtplib.SMTPResponseException as exc:  # an explicit reply refusing the message
            await self.close()
            raise Refused(f"SMTP {exc.code} to DATA: {exc.message}", permanent=500 <= exc.code < 600) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError, asyncio.CancelledError) as exc:
            await self.close()
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise Unknown(f"DATA exchange broke off: {exc!r}") from exc


class NotificationSender:
    """Background task: claim due notifications and mail them over a few SMTP sessions."""

    def __init__(self, pool: Callable[[], asyncpg.Pool], ctx: Context, *, poll_interval: float = 1.0) -> None:
        self._pool = pool  # the runtime's pool, which exists once the runtime started
        self._ctx = ctx
        self._s = ctx.settings
        self._poll = poll_interval
        self._wake = asyncio.Event()
        self._stopping = False
        self._sessions = [SmtpSession(ctx) for _ in range(self._s.alerts_smtp_concurrency)]
        self.worker = f"sender-{uuid.uuid4().hex[:8]}"
        self.task: asyncio.Task | None = None
        self.sent_total = 0

    def wake(self, *_: object) -> None:
        self._wake.set()

    async def stop(self, timeout: float = 5.0) -> None:
        """Finish the mails in flight (bounded), then stop."""
        self._stopping = True
        self._wake.set()
        if self.task is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self.task), timeout)
        for session in self._sessions:
            await session.close()

    async def run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            try:
                async with self._pool().acquire() as listener:
                    await listener.add_listener(NOTIFY_CHANNEL, self.wake)
                    try:
                        await self._loop()
                    finally:
                        with contextlib.suppress(Exception):
                            await listener.remove_listener(NOTIFY_CHANNEL, self.wake)
                backoff = 0.2
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database away: back off, never give up
                logger.warning("notification sender failed; retrying", extra={"error": repr(exc), "backoff_s": backoff})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    async def _loop(self) -> None:
        last_settle = 0.0
        while not self._stopping:
            self._wake.clear()
            if time.monotonic() - last_settle > min(self._s.alerts_sending_lease_seconds / 4, 30):
                await self.settle_stale()
                last_settle = time.monotonic()
            sent = await self.send_due()
            if sent:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll)

    async def settle_stale(self) -> list[str]:
        """Rows left 'sending' past the lease (a process died mid-send) become uncertain (or pending)."""
        now = self._ctx.clock.now()
        async with self._pool().acquire() as conn:
            ids = await NotificationDeliveries(conn).settle_stale_sending(
                claimed_before=now - timedelta(seconds=self._s.alerts_sending_lease_seconds),
                resend=self._s.alerts_resend_uncertain, now=now,
            )
        if ids:
            logger.warning("notifications with unknown SMTP outcome after a crash",
                           extra={"notification_ids": ids, "resend": self._s.alerts_resend_uncertain})
            if not self._s.alerts_resend_uncertain:
                self._ctx.metrics.emails.labels("uncertain").inc(len(ids))
        return ids

    async def send_due(self) -> int:
        """Claim and send one round of due notifications; returns how many were claimed."""
        batch = len(self._sessions) * 8
        async with self._pool().acquire() as conn:
            claimed = await NotificationDeliveries(conn).claim_notifications(
                now=self._ctx.clock.now(), limit=batch, worker=self.worker)
        if not claimed:
            return 0
        queues: list[list[asyncpg.Record]] = [claimed[i:: len(self._sessions)] for i in range(len(self._sessions))]
        await asyncio.gather(*(self._send_queue(session, queue) for session, queue in zip(self._sessions, queues)))
        return len(claimed)

    async def _send_queue(self, session: SmtpSession, queue: list[asyncpg.Record]) -> None:
        for index, row in enumerate(queue):
            if self._stopping and index > 0:
                async with self._pool().acquire() as conn:
                    await NotificationDeliveries(conn).release_claims(
                        worker=self.worker, ids=[r["notification_id"] for r in queue[index:]])
                return
            await self._send_one(session, row)

    async def _send_one(self, session: SmtpSession, row: asyncpg.Record) -> None:
        metrics = self._ctx.metrics
        message = emails.build_message(
            sender=self._s.smtp_from, recipients=list(row["recipients"]), subject_line=row["subject"],
            text=row["body_text"], body_html=row["body_html"], msg_id=row["message_id"],
            created_at=row["created_at"], alert_id=row["alert_id"],
        )
        started = time.perf_counter()
        outcome, error, permanent = "sent", None, False
        try:
            await session.deliver(list(row["recipients"]), message)
        except Refused as exc:
            outcome, error, permanent = "retry", str(exc), exc.permanent
        except Unknown as exc:
            outcome, error = "uncertain", str(exc)
        metrics.email_seconds.observe(time.perf_counter() - started)
        now = self._ctx.clock.now()
        async with self._pool().acquire() as conn:
            deliveries = NotificationDeliveries(conn)
            if outcome == "sent":
                await deliveries.mark_sent(row["notification_id"], at=now)
                self.sent_total += 1
            elif outcome == "uncertain":
                if self._s.alerts_resend_uncertain:
                    await deliveries.mark_retry(row["notification_id"], error=error, next_attempt_at=now)
                else:
                    await deliveries.mark_uncertain(row["notification_id"], error=error)
            else:
                exhausted = permanent or row["attempts"] >= self._s.alerts_smtp_max_attempts
                delay = min(2.0 * 2 ** (row["attempts"] - 1), self._s.alerts_smtp_max_backoff_seconds)
                delay *= random.uniform(0.8, 1.2)
                await deliveries.mark_retry(row["notification_id"], error=error,
                                            next_attempt_at=None if exhausted else now + timedelta(seconds=delay))
                outcome = "failed" if exhausted else "retry"
        metrics.emails.labels(outcome).inc()
        log = logger.info if outcome == "sent" else logger.warning
        log("notification " + outcome, extra={
            "notification_id": row["notification_id"], "alert_id": row["alert_id"], "attempt": row["attempts"],
            "recipients": len(row["recipients"]), **({"error": error} if error else {}),
        })
