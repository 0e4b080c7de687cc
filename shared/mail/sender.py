"""The background sender of one service's ``mail_queue``.

One per process; replicas share the table. A dispatcher claims due mails
(``FOR UPDATE SKIP LOCKED``, committed before any SMTP traffic) and hands them
to ``MAIL_CONCURRENCY`` workers, each with its own persistent SMTP session. A
keeper renews the leases of what this process holds and settles the mails of
processes that died (lease ran out: outcome unknown).

Delivery policy (issue 13: mail is delivered or a person is told):

- A transient failure (relay unreachable, timeout, 4xx, a refused MAIL FROM)
  schedules the mail again after a capped, jittered, growing delay
  (``shared.retry.delay_for_attempt``). There is no attempt limit: mail stays
  pending through an outage of any length; ``keymoment_mail_oldest_pending_seconds``
  tells a person when that lasts.
- A permanent refusal (5xx) gives up only the recipients refused: the mail
  goes to the others and records who was refused; refused by all, it fails.
  Recipients deferred with a 4xx are tried again later, alone.
- A DATA exchange that breaks off, or a process that dies holding a mail,
  leaves the outcome unknown: ``MAIL_UNCERTAIN_POLICY`` resends it (default;
  same bytes and Message-ID) or holds it as ``uncertain``.
- Stopping lets the SMTP exchanges in flight finish within
  ``MAIL_SHUTDOWN_GRACE_SECONDS`` and gives back what was claimed but not started.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from email.utils import parseaddr

import asyncpg

from shared.clock import Clock
from shared.mail import queue
from shared.mail.message import normalize_address
from shared.mail.metrics import MailMetrics
from shared.mail.queue import ClaimedMail, MailState, Outcome
from shared.mail.settings import MailSettings, UncertainPolicy
from shared.mail.smtp import Delivery, NotSent, OutcomeUnknown, SmtpSession
from shared.retry import Backoff, delay_for_attempt, retry_forever

logger = logging.getLogger(__name__)

RETRY_JITTER = 0.2


def decide(
    mail: ClaimedMail, answer: Delivery | NotSent | OutcomeUnknown, *, settings: MailSettings, now: datetime
) -> Outcome:
    """The outcome of one attempt of ``mail`` given what the relay answered."""

    def later() -> datetime:
        return now + timedelta(seconds=delay_for_attempt(
            mail.attempts, initial=settings.mail_retry_initial_seconds, maximum=settings.mail_retry_max_seconds,
            jitter=RETRY_JITTER,
        ))

    if isinstance(answer, NotSent):
        return Outcome(MailState.PENDING, next_attempt_at=later(), error=str(answer), counter="retries")
    if isinstance(answer, OutcomeUnknown):
        error = f"{answer}; delivery unknown"
        if settings.mail_uncertain_policy is UncertainPolicy.RESEND:
            return Outcome(MailState.PENDING, next_attempt_at=later(), error=error, counter="uncertain")
        return Outcome(MailState.UNCERTAIN, error=error, counter="uncertain")
    refusals = "; ".join(f"{reason} (x{n})" for reason, n in Counter(answer.refused.values()).items())
    if answer.deferred:
        reasons = "; ".join(dict.fromkeys(answer.deferred.values()))
        return Outcome(MailState.PENDING, answer.accepted, answer.refused, later(),
                       f"{len(answer.deferred)} recipient(s) deferred: {reasons}", "retries")
    if mail.delivered_to or answer.accepted:
        return Outcome(MailState.SENT, answer.accepted, answer.refused,
                       error=f"refused permanently: {refusals}" if answer.refused else None, counter="sent")
    return Outcome(MailState.FAILED, (), answer.refused, error=f"refused permanently: {refusals}", counter="failed")


SettledHook = Callable[[asyncpg.Connection, ClaimedMail, Outcome], Awaitable[None]]
"""Called with the outcome of an attempt that delivered to or refused someone (``sent``, ``failed``,
or ``pending`` with some recipients settled), inside the transaction that records it: the owner of
the mail records what it means (an invitation delivered, an address that bounced) exactly once."""


class MailSender:
    """Sends what is due in ``mail_queue``; :meth:`run` until :meth:`stop`."""

    def __init__(self, settings: MailSettings, *, schema: str, metrics: MailMetrics, clock: Clock,
                 on_settled: SettledHook | None = None) -> None:
        self._s = settings
        self._on_settled = on_settled
        self._channel = queue.channel(schema)
        self.metrics = metrics
        self._clock = clock
        self.worker = f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.envelope_from = normalize_address(parseaddr(settings.smtp_from)[1] or "keymoment@localhost")
        self._sessions = [SmtpSession(settings) for _ in range(settings.mail_concurrency)]
        # Claimed ahead of the workers: one in flight and up to two waiting each. Claimed again
        # when one waits each (a claim of about MAIL_CONCURRENCY mails, not one per mail sent),
        # so a worker finishing a mail finds its next one waiting while the claim runs.
        self._capacity = 3 * settings.mail_concurrency
        self._refill_at = 2 * settings.mail_concurrency
        self._queue: asyncio.Queue[ClaimedMail | None] = asyncio.Queue()
        self._outstanding = 0
        self._room = asyncio.Event()
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()
        self._current: dict[SmtpSession, ClaimedMail] = {}
        self._recording: dict[str, asyncio.Future] = {}  # mail id -> its outcome written
        self._unrecorded: list[tuple[ClaimedMail, Outcome, asyncio.Future]] = []
        self._recorder: asyncio.Task | None = None
        self._retrying: set[asyncio.Task] = set()
        self._dispatcher: asyncio.Task | None = None
        self._keeper: asyncio.Task | None = None
        self._workers: list[asyncio.Task] = []
        self._pool: asyncpg.Pool | None = None
        self.rounds = 0  # claim rounds done
        self.last_error: str | None = None

    def wake(self, *_: object) -> None:
        self._wake.set()

    # --- lifecycle ------------------------------------------------------------------------
    async def run(self, pool: asyncpg.Pool) -> None:
        """Send until :meth:`stop` (which lets the mails in flight finish); cancelling this
        task instead cuts everything off (the leases then settle what was in flight)."""
        self._pool = pool
        self._keeper = asyncio.create_task(self._keep_leases(), name="mail-leases")
        self._workers = [asyncio.create_task(self._work(s), name=f"mail-worker-{i}")
                         for i, s in enumerate(self._sessions)]
        self._dispatcher = asyncio.create_task(retry_forever(
            self._dispatch, what="mail sender", backoff=Backoff(initial=0.2, maximum=5.0, jitter=0.2),
            on_error=self._note_error, logger=logger,
        ), name="mail-dispatcher")
        for task in (self._keeper, self._dispatcher, *self._workers):
            task.add_done_callback(self._part_done)
        try:
            await self._stopped.wait()
        finally:
            parts = [t for t in (self._dispatcher, self._keeper, *self._workers) if not t.done()]
            for task in parts:
                task.cancel()
            await asyncio.gather(*parts, return_exceptions=True)

    async def stop(self) -> None:
        """Stop claiming, give back what was claimed and not started, let the SMTP
        exchanges in flight finish within the grace period, then record the rest."""
        if self._pool is None or self._stopping:
            return
        self._stopping = True
        for task in (self._dispatcher, self._keeper):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._dispatcher, self._keeper) if t), return_exceptions=True)
        while not self._queue.empty():  # claimed, not started: released below
            self._queue.get_nowait()
        for _ in self._workers:
            self._queue.put_nowait(None)
        late: set[asyncio.Task] = set()
        if self._workers:
            _, late = await asyncio.wait(self._workers, timeout=self._s.mail_shutdown_grace_seconds)
        cut = [mail.mail_id for session, mail in self._current.items() if session.in_data]
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        if self._recording:  # outcomes being written: let them land before giving anything back
            await asyncio.wait(list(self._recording.values()), timeout=5)
        keep = [*cut, *(mail_id for mail_id, t in self._recording.items() if not t.done())]
        try:
            async with self._pool.acquire() as conn:
                if cut:
                    unknown = await queue.mark_unknown(
                        conn, cut, resend=self._resend, now=self._clock.now(), worker=self.worker,
                        error="shutdown cut the DATA exchange off: delivery unknown",
                    )
                    self._count_uncertain(unknown, "shutdown cut the DATA exchange off")
                released = await queue.release(conn, worker=self.worker, keep=keep)
            if released:
                logger.info("mail claimed but not started given back", extra={"mails": len(released)})
        except Exception as exc:  # database away: the leases run out and settle them
            logger.warning("could not give back claimed mail", extra={"error": repr(exc)})
        for session in self._sessions:
            await session.close()
        self._stopped.set()

    @property
    def _resend(self) -> bool:
        return self._s.mail_uncertain_policy is UncertainPolicy.RESEND

    def _note_error(self, exc: BaseException) -> None:
        self.last_error = repr(exc)

    def _part_done(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("mail sender part died", extra={"task": task.get_name()}, exc_info=task.exception())

    async def refresh_metrics(self, pool: asyncpg.Pool) -> None:
        await self.metrics.refresh(pool, now=self._clock.now())

    # --- claiming -------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        async with self._pool.acquire() as conn:
            await conn.add_listener(self._channel, self.wake)
            try:
                while True:
                    self._wake.clear()
                    if self._outstanding > self._refill_at:
                        self._room.clear()
                        if self._outstanding > self._refill_at:
                            await self._room.wait()
                        continue
                    free = self._capacity - self._outstanding
                    now = self._clock.now()
                    claim = await queue.claim(
                        conn, worker=self.worker, now=now, lease_seconds=self._s.mail_lease_seconds, limit=free
                    )
                    self.rounds += 1
                    self.last_error = None
                    for mail in claim.mails:
                        self._outstanding += 1
                        self._queue.put_nowait(mail)
                    if len(claim.mails) == free:
                        continue  # more may be due
                    due = claim.next_due_in
                    timeout = self._s.mail_poll_seconds if due is None else min(due, self._s.mail_poll_seconds)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), max(timeout, 0.01))
            finally:
                with contextlib.suppress(Exception):
                    await conn.remove_listener(self._channel, self.wake)

    async def _keep_leases(self) -> None:
        """Renew this process's leases; settle the mails of senders that died."""
        every = min(self._s.mail_lease_seconds / 3, self._s.mail_poll_seconds)
        while True:
            try:
                now = self._clock.now()
                async with self._pool.acquire() as conn:
                    await queue.renew(conn, worker=self.worker, lease_until=now + timedelta(seconds=self._s.mail_lease_seconds))
                    settled = await queue.settle_expired(conn, now=now, resend=self._resend)
                if settled:
                    self._count_uncertain(settled, "a sender holding them stopped (lease ran out)")
                    self.wake()
            except Exception as exc:  # database away: try again next round
                logger.warning("mail lease upkeep failed", extra={"error": repr(exc)})
            await asyncio.sleep(every)

    def _count_uncertain(self, mails: list[tuple[str, str]], why: str) -> None:
        for mail_id, purpose in mails:
            self.metrics.uncertain.labels(purpose).inc()
            logger.warning("mail delivery unknown: " + why, extra={
                "mail_id": mail_id, "purpose": purpose, "policy": self._s.mail_uncertain_policy.value})

    # --- sending --------------------------------------------------------------------------
    async def _work(self, session: SmtpSession) -> None:
        while True:
            mail = await self._queue.get()
            if mail is None:
                return
            self._current[session] = mail
            try:
                await self._send(session, mail)
            except Exception:  # a defect: the lease will settle the mail
                logger.exception("mail send failed unexpectedly", extra={"mail_id": mail.mail_id})
            finally:
                self._current.pop(session, None)
                self._outstanding -= 1
                if self._outstanding <= self._refill_at:
                    self._room.set()

    async def _send(self, session: SmtpSession, mail: ClaimedMail) -> None:
        answer: Delivery | NotSent | OutcomeUnknown
        if not mail.targets:  # every recipient settled before (e.g. a requeue)
            answer = Delivery()
        else:
            started = time.perf_counter()
            try:
                answer = await session.deliver(self.envelope_from, mail.targets, mail.message)
            except (NotSent, OutcomeUnknown) as exc:
                answer = exc
            self.metrics.send_seconds.labels(mail.purpose).observe(time.perf_counter() - started)
        outcome = decide(mail, answer, settings=self._s, now=self._clock.now())
        # Written in the background, with the outcomes of the other sessions (see _record_waiting):
        # the session goes on to its next mail meanwhile. Written even if this task is cancelled
        # now (an unrecorded 'sent' would be sent again); stop() waits for what is being written.
        recorded = asyncio.get_running_loop().create_future()
        self._recording[mail.mail_id] = recorded
        recorded.add_done_callback(lambda _: self._recording.pop(mail.mail_id, None))
        self._unrecorded.append((mail, outcome, recorded))
        if self._recorder is None or self._recorder.done():
            self._recorder = asyncio.create_task(self._record_waiting(), name="mail-recorder")

    # --- recording ------------------------------------------------------------------------
    async def _record_waiting(self) -> None:
        """Write the outcomes waiting, all at once, until none waits: the outcomes that come in
        while one write runs go together in the next (one statement for many mails, not one each).
        When a group's write fails, each of its mails is retried on its own, for ever, beside
        the next groups: one mail whose owner cannot record it holds up no other."""
        while self._unrecorded:
            group, self._unrecorded = self._unrecorded, []
            try:
                await self._record(group)
            except Exception as exc:
                logger.warning("recording mail outcomes failed; retrying each alone", extra={"error": repr(exc)})
                for one in group:
                    retrying = asyncio.create_task(retry_forever(
                        lambda one=one: self._record([one]), what="recording a mail's outcome",
                        backoff=Backoff(initial=0.2, maximum=5.0), logger=logger,
                    ))
                    self._retrying.add(retrying)
                    retrying.add_done_callback(lambda t, done=one[2]: self._retried(t, done))
                continue
            for _, _, recorded in group:
                recorded.set_result(None)

    def _retried(self, task: asyncio.Task, recorded: asyncio.Future) -> None:
        self._retrying.discard(task)
        if not task.cancelled() and task.exception() is None:  # else not written: stop() keeps it, the lease settles it
            recorded.set_result(None)

    async def _record(self, group: list[tuple[ClaimedMail, Outcome, asyncio.Future]]) -> None:
        outcomes = {mail.mail_id: outcome for mail, outcome, _ in group}
        heard = [(mail, outcome) for mail, outcome, _ in group if outcome.delivered or outcome.refused] \
            if self._on_settled is not None else []
        async with self._pool.acquire() as conn:
            # One statement on its own when nobody hears of it (a round trip, not three)
            async with conn.transaction() if heard else contextlib.nullcontext():
                ours = await queue.finish(conn, outcomes, worker=self.worker, now=self._clock.now())
                for mail, outcome in heard:
                    if mail.mail_id in ours:
                        await self._on_settled(conn, mail, outcome)
        for mail, outcome, _ in group:
            self._recorded(mail, outcome, ours=mail.mail_id in ours)

    def _recorded(self, mail: ClaimedMail, outcome: Outcome, *, ours: bool) -> None:
        log = {"mail_id": mail.mail_id, "purpose": mail.purpose, "ref": mail.ref, "attempt": mail.attempts,
               "outcome": outcome.state.value}
        if not ours:
            logger.warning("mail outcome not recorded: it is no longer this sender's (its lease ran out and another "
                           "sender took it over, so it may be sent twice with the same Message-ID; or it was "
                           "forgotten meanwhile)", extra=log)
            return
        if outcome.refused:
            self.metrics.refused_recipients.labels(mail.purpose).inc(len(outcome.refused))
        if outcome.counter:
            getattr(self.metrics, outcome.counter).labels(mail.purpose).inc()
        if outcome.state is MailState.SENT and not outcome.error:
            logger.info("mail sent", extra=log)
        else:
            logger.warning("mail not sent" if outcome.state is not MailState.SENT else "mail sent; some refused",
                           extra={**log, "error": outcome.error, "retry_at": outcome.next_attempt_at})
