"""The shared mail queue against real PostgreSQL and real SMTP servers (aiosmtpd):
enqueue, persistent sessions, an outage of any length, per-recipient refusals,
two senders under load, unknown outcomes and graceful stops."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from shared.clock import ManualClock
from shared.db import create_pool
from shared.mail import queue
from shared.mail.queue import MailState, MailStatus
from tests.integration.mail.conftest import SCHEMA, counter, mail_settings, new_sender, outgoing, sending
from tests.integration.mail.smtp import SmtpServer, SmtpSink
from tests.support.services import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


async def status(pool, mail_id: str) -> MailStatus:
    return (await queue.statuses(pool, [mail_id]))[mail_id]


async def enqueue(pool, mails, *, now: datetime | None = None) -> list[str]:
    async with pool.acquire() as conn:
        return await queue.enqueue(conn, mails, now=now or datetime.now(UTC))


def in_state(pool, mail_id: str, state: MailState, **fields):
    async def check() -> bool:
        mail = await status(pool, mail_id)
        return mail.state is state and all(getattr(mail, k) == v for k, v in fields.items())
    return check


# --- enqueue ----------------------------------------------------------------------------------
async def test_enqueue_is_idempotent_and_its_wake_up_comes_with_the_commit(pool):
    woke = asyncio.Event()
    two = outgoing(2, to=("a@example.cn", "b@example.cn"))
    async with pool.acquire() as listener, pool.acquire() as conn:
        def wake(*_: object) -> None:
            woke.set()

        await listener.add_listener(queue.channel(SCHEMA), wake)
        async with conn.transaction():
            added = await queue.enqueue(conn, [outgoing(1), two], now=T0)
            await listener.execute("SELECT 1")  # a round trip: a notification sent by now would be here
            assert not woke.is_set(), "no wake-up before the transaction commits"
        await asyncio.wait_for(woke.wait(), 5)
        assert sorted(added) == ["m-1", "m-2"]

        woke.clear()
        assert await queue.enqueue(conn, [outgoing(1), two], now=T0 + timedelta(hours=1)) == []
        await listener.execute("SELECT 1")
        assert not woke.is_set(), "nothing new queued: nobody is woken"
        stored = await conn.fetchval("SELECT message FROM mail_queue WHERE mail_id = 'm-2'")
        await listener.remove_listener(queue.channel(SCHEMA), wake)
    mail = await status(pool, "m-2")
    assert (mail.state, mail.attempts, mail.created_at, mail.next_attempt_at) == (MailState.PENDING, 0, T0, T0)
    assert mail.recipients == ("a@example.cn", "b@example.cn") and mail.purpose == "survey_invitation"
    assert mail.ref == "ref-2" and mail.message_id == "<mail-2@keymoment.example>" and stored == two.message


async def test_a_rolled_back_enqueue_leaves_nothing(pool):
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            async with conn.transaction():
                await queue.enqueue(conn, [outgoing(1)], now=T0)
                raise RuntimeError("the caller's transaction fails")
    assert await queue.statuses(pool, ["m-1"]) == {}


async def test_a_claim_says_when_the_next_mail_is_due_and_none_when_nothing_is_pending(pool):
    """Nothing pending must not read as "due now": the sender would poll the database every 10 ms."""
    async with pool.acquire() as conn:
        empty = await queue.claim(conn, worker="w-1", now=T0, lease_seconds=60, limit=2)
        await queue.enqueue(conn, [outgoing(1)], now=T0)
        early = await queue.claim(conn, worker="w-1", now=T0 - timedelta(seconds=60), lease_seconds=60, limit=2)
        await queue.enqueue(conn, [outgoing(2)], now=T0 + timedelta(seconds=1))
        first = await queue.claim(conn, worker="w-1", now=T0 + timedelta(seconds=5), lease_seconds=60, limit=1)
        last = await queue.claim(conn, worker="w-1", now=T0 + timedelta(seconds=5), lease_seconds=60, limit=1)
    assert (empty.mails, empty.next_due_in) == ([], None)
    assert (early.mails, early.next_due_in) == ([], 60.0), "not due yet: nothing claimed, due in a minute"
    assert [m.mail_id for m in first.mails] == ["m-1"] and first.next_due_in == 0.0, "the other is overdue"
    assert [m.mail_id for m in last.mails] == ["m-2"] and last.next_due_in is None, "the claimed ones are not pending"


# --- sending ----------------------------------------------------------------------------------
async def test_every_mail_sent_once_over_a_persistent_session(pool):
    mails = [outgoing(i) for i in range(20)]
    with SmtpServer(SmtpSink()) as smtp:
        sender = new_sender(mail_settings(smtp.port, mail_concurrency=1))
        async with sending(sender, pool):
            await enqueue(pool, mails)
            for mail in mails:
                await wait_until(in_state(pool, mail.mail_id, MailState.SENT), timeout=20, what=f"{mail.mail_id} sent")
    assert sorted(smtp.raw) == sorted(m.message for m in mails), "the stored bytes, unchanged"
    assert smtp.sessions == 1 and smtp.rsets == 0, "one session, no RSET between mails"
    assert counter(sender, "sent") == 20 and counter(sender, "retries") == 0
    one = await status(pool, "m-0")
    assert one.attempts == 1 and one.delivered_to == ("li.wei@example.cn",) and one.sent_at is not None


async def test_mail_is_claimed_about_mail_concurrency_at_a_time_not_one_per_mail_sent(pool, monkeypatch):
    """A worker finishing a mail does not cost a claim of its own: the dispatcher claims again
    once the mails waiting are gone, several at once, and each worker still finds its next one."""
    claimed: list[int] = []
    claim = queue.claim

    async def counting(*args, **kwargs):
        found = await claim(*args, **kwargs)
        if found.mails:
            claimed.append(len(found.mails))
        return found

    monkeypatch.setattr(queue, "claim", counting)
    mails = [outgoing(i) for i in range(60)]
    await enqueue(pool, mails)  # all due before the sender starts
    with SmtpServer(SmtpSink()) as smtp:
        sender = new_sender(mail_settings(smtp.port, mail_concurrency=4))
        async with sending(sender, pool):
            for mail in mails:
                await wait_until(in_state(pool, mail.mail_id, MailState.SENT), timeout=30, what=f"{mail.mail_id} sent")
    assert sorted(smtp.raw) == sorted(m.message for m in mails)
    assert sum(claimed) == 60 and claimed[0] == 12  # one in flight and two waiting per worker
    assert len(claimed) <= 60 // 4 + 2, claimed  # before: a claim for about every mail sent


async def test_a_session_the_relay_dropped_while_idle_is_reopened_before_mail(pool):
    with SmtpServer(SmtpSink()) as smtp:
        sender = new_sender(mail_settings(smtp.port, mail_concurrency=1))
        async with sending(sender, pool):
            await enqueue(pool, [outgoing(1)])
            await wait_until(in_state(pool, "m-1", MailState.SENT), what="first mail sent")
            smtp.drop_reused = 1  # the next MAIL on that session gets 421 and a hang-up
            await enqueue(pool, [outgoing(2)])
            await wait_until(in_state(pool, "m-2", MailState.SENT), what="second mail sent")
    assert (await status(pool, "m-2")).attempts == 1, "reopened within the attempt: no retry"
    assert smtp.sessions == 2 and counter(sender, "retries") == 0 and len(smtp.messages) == 2


async def test_mail_stays_pending_through_an_smtp_outage_longer_than_the_old_give_up(pool):
    """The old senders gave up after 6 (survey) and 12 (alerts) attempts; now the delay is
    capped and there is no attempt limit. Time is a ManualClock: nothing waits for real."""
    clock = ManualClock(T0)
    server = SmtpServer(SmtpSink())  # not started: nothing listens on its port
    sender = new_sender(mail_settings(server.port, mail_retry_initial_seconds=2, mail_retry_max_seconds=60),
                        clock=clock)
    try:
        async with sending(sender, pool):
            await enqueue(pool, [outgoing(1)], now=clock.now())
            sender.wake()
            failures = 25  # 24 capped, jittered delays: at least 0.8 * 1,202 s, longer than the old give-up
            for attempt in range(1, failures + 1):
                await wait_until(in_state(pool, "m-1", MailState.PENDING, attempts=attempt), what=f"attempt {attempt}")
                mail = await status(pool, "m-1")
                delay = (mail.next_attempt_at - clock.now()).total_seconds()
                expected = min(2.0 * 2 ** (attempt - 1), 60.0)
                assert 0.8 * expected <= delay <= 1.2 * expected, (attempt, delay)
                assert "unreachable" in mail.last_error
                if attempt == failures:
                    await sender.refresh_metrics(pool)
                    oldest = sender.metrics.registry.get_sample_value(
                        "keymoment_mail_oldest_pending_seconds", {"purpose": "survey_invitation"})
                    assert oldest == (clock.now() - T0).total_seconds() > 15 * 60, "the outage shows in the gauge"
                    server.start()  # the relay is back before the next attempt is due (no race with it)
                clock.advance(delay)
                sender.wake()
            await wait_until(in_state(pool, "m-1", MailState.SENT), what="sent once the relay is back")
            await sender.refresh_metrics(pool)
    finally:
        server.stop()
    assert (await status(pool, "m-1")).attempts == failures + 1 and len(server.handler.messages) == 1
    assert counter(sender, "retries") == failures and counter(sender, "failed") == 0 and counter(sender, "sent") == 1
    assert sender.metrics.registry.get_sample_value(
        "keymoment_mail_oldest_pending_seconds", {"purpose": "survey_invitation"}) == 0.0


async def test_a_permanent_refusal_gives_up_only_the_refused_recipients(pool):
    sink = SmtpSink()
    sink.refuse = {"nobody@example.cn": "550 5.1.1 no such user", "gone@example.cn": "553 5.1.3 mailbox gone"}
    sink.defer = {"busy@example.cn": 2}
    mails = [outgoing(1, to=("li.wei@example.cn", "nobody@example.cn", "wang.fang@example.cn")),
             outgoing(2, to=("nobody@example.cn", "gone@example.cn")),
             outgoing(3, to=("zhao.lei@example.cn", "busy@example.cn"))]
    with SmtpServer(sink):
        sender = new_sender(mail_settings(sink.port, mail_concurrency=1))
        async with sending(sender, pool):
            await enqueue(pool, mails)
            await wait_until(in_state(pool, "m-1", MailState.SENT), what="m-1 sent to the others")
            await wait_until(in_state(pool, "m-2", MailState.FAILED), what="m-2 failed")
            await wait_until(in_state(pool, "m-3", MailState.SENT), what="m-3 sent, the deferred one later")
    one, two, three = [await status(pool, f"m-{i}") for i in (1, 2, 3)]
    assert one.delivered_to == ("li.wei@example.cn", "wang.fang@example.cn")
    assert one.refused == {"nobody@example.cn": "550 5.1.1 no such user"} and one.attempts == 1
    assert two.delivered_to == () and set(two.refused) == {"nobody@example.cn", "gone@example.cn"}
    assert "refused permanently" in two.last_error
    assert three.delivered_to == ("zhao.lei@example.cn", "busy@example.cn") and three.refused == {}
    assert three.attempts == 3, "deferred twice (450), then accepted"
    by_id = {}
    for message, rcpts in zip(sink.messages, sink.recipients, strict=True):
        by_id.setdefault(message["Message-ID"], []).append(rcpts)
    assert by_id == {
        one.message_id: [["li.wei@example.cn", "wang.fang@example.cn"]],
        three.message_id: [["zhao.lei@example.cn"], ["busy@example.cn"]],  # the deferred one alone, same mail
    }
    assert (counter(sender, "sent"), counter(sender, "failed"), counter(sender, "refused_recipients"),
            counter(sender, "retries")) == (2, 1, 3, 2)


async def test_two_senders_never_send_one_mail_twice_under_load(pool, database_url):
    mails = [outgoing(i, to=(f"guest{i}@example.cn",)) for i in range(300)]
    other_pool = await create_pool(database_url, schema=SCHEMA, min_size=1, max_size=12)  # another process
    try:
        with SmtpServer(SmtpSink(data_delay=0.002)) as smtp:
            first = new_sender(mail_settings(smtp.port, mail_concurrency=4))
            second = new_sender(mail_settings(smtp.port, mail_concurrency=4))
            async with sending(first, pool), sending(second, other_pool):
                await enqueue(pool, mails)

                async def all_sent() -> bool:
                    return (await queue.state_counts(pool, purpose="survey_invitation")) == {"sent": 300}

                await wait_until(all_sent, timeout=90, what="300 mails sent")
    finally:
        await other_pool.close()
    ids = smtp.message_ids()
    assert len(ids) == 300 and len(set(ids)) == 300, "every mail exactly once"
    assert counter(first, "sent") + counter(second, "sent") == 300
    assert counter(first, "sent") > 0 and counter(second, "sent") > 0, "both senders took part"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT max(attempts) FROM mail_queue") == 1


# --- unknown outcomes ---------------------------------------------------------------------------
async def test_a_data_exchange_broken_off_is_resent_with_the_same_message_id(pool):
    sink = SmtpSink()
    sink.break_off = 1  # the relay takes the first copy, the reply never arrives
    with SmtpServer(sink):
        sender = new_sender(mail_settings(sink.port))  # MAIL_UNCERTAIN_POLICY=resend (default)
        async with sending(sender, pool):
            await enqueue(pool, [outgoing(1)])
            await wait_until(in_state(pool, "m-1", MailState.SENT), what="resent and sent")
    assert len(sink.arrived) == 2 and sink.arrived[0] == sink.arrived[1], "the same bytes twice"
    assert len(sink.messages) == 1 and sink.messages[0]["Message-ID"] == "<mail-1@keymoment.example>"
    assert (await status(pool, "m-1")).attempts == 2
    assert counter(sender, "uncertain") == 1 and counter(sender, "sent") == 1


async def test_hold_policy_leaves_an_unknown_outcome_uncertain_until_requeued(pool):
    sink = SmtpSink()
    sink.break_off = 1
    with SmtpServer(sink):
        sender = new_sender(mail_settings(sink.port, mail_uncertain_policy="hold"))
        async with sending(sender, pool):
            await enqueue(pool, [outgoing(1)])
            await wait_until(in_state(pool, "m-1", MailState.UNCERTAIN), what="uncertain")
            await sender.refresh_metrics(pool)
            assert sender.metrics.registry.get_sample_value(
                "keymoment_mail_oldest_pending_seconds", {"purpose": "survey_invitation"}) > 0, \
                "an uncertain mail is not settled: a person must be told"
            assert len(sink.arrived) == 1, "held: not sent twice"
            async with pool.acquire() as conn:
                assert await queue.requeue(conn, ["m-1"], now=datetime.now(UTC)) == ["m-1"]
            sender.wake()
            await wait_until(in_state(pool, "m-1", MailState.SENT), what="sent after the requeue")
    assert len(sink.arrived) == 2 and counter(sender, "uncertain") == 1


async def test_a_sender_dying_mid_data_leaves_the_mail_to_be_resent_by_another(pool, database_url):
    clock = ManualClock(T0)
    sink = SmtpSink()
    sink.hold.clear()  # DATA hangs: the process dies in the middle of it
    with SmtpServer(sink):
        settings = mail_settings(sink.port, mail_lease_seconds=30)
        doomed_pool = await create_pool(database_url, schema=SCHEMA, min_size=1, max_size=4)
        doomed = new_sender(settings, clock=clock)
        task = asyncio.create_task(doomed.run(doomed_pool))
        await enqueue(pool, [outgoing(1)], now=clock.now())
        await wait_until(sink.in_data.is_set, what="the DATA exchange started")
        task.cancel()  # killed: no graceful stop, nothing recorded
        await asyncio.gather(task, return_exceptions=True)
        doomed_pool.terminate()
        held = await status(pool, "m-1")
        assert held.state is MailState.SENDING and held.attempts == 1
        sink.hold.set()

        clock.advance(31)  # the dead sender's lease runs out
        survivor = new_sender(settings, clock=clock)
        async with sending(survivor, pool):
            await wait_until(in_state(pool, "m-1", MailState.SENT), what="resent by the survivor")
    assert len(sink.arrived) == 2 and sink.arrived[0] == sink.arrived[1], "the same mail, same Message-ID"
    assert (await status(pool, "m-1")).attempts == 2 and counter(survivor, "uncertain") == 1


# --- stopping -----------------------------------------------------------------------------------
async def test_a_graceful_stop_finishes_the_send_in_flight_and_gives_back_the_rest(pool):
    sink = SmtpSink()
    sink.hold.clear()
    with SmtpServer(sink):
        sender = new_sender(mail_settings(sink.port, mail_concurrency=1, mail_shutdown_grace_seconds=20))
        task = asyncio.create_task(sender.run(pool))
        await enqueue(pool, [outgoing(1), outgoing(2), outgoing(3)])
        await wait_until(sink.in_data.is_set, what="the first DATA exchange started")
        stopping = asyncio.create_task(sender.stop())
        await asyncio.sleep(0.3)
        assert not stopping.done(), "stop waits for the DATA exchange in flight"
        sink.hold.set()
        await asyncio.wait_for(stopping, 20)
        await asyncio.wait_for(task, 5)
    states = {m.mail_id: (m.state, m.attempts) for m in (await queue.statuses(pool, ["m-1", "m-2", "m-3"])).values()}
    sent = [mail_id for mail_id, (state, _) in states.items() if state is MailState.SENT]
    assert len(sent) == 1 and len(sink.messages) == 1, "the mail in flight finished"
    assert sorted(v for k, v in states.items() if k not in sent) == [(MailState.PENDING, 0)] * 2, \
        "claimed but not started: given back, the attempt not counted"
    assert counter(sender, "uncertain") == 0


async def test_a_stop_past_the_grace_period_leaves_the_cut_mail_uncertain(pool):
    sink = SmtpSink()
    sink.hold.clear()
    with SmtpServer(sink):
        sender = new_sender(mail_settings(sink.port, mail_concurrency=1, mail_shutdown_grace_seconds=0.3,
                                          mail_uncertain_policy="hold"))
        task = asyncio.create_task(sender.run(pool))
        await enqueue(pool, [outgoing(1)])
        await wait_until(sink.in_data.is_set, what="the DATA exchange started")
        await asyncio.wait_for(sender.stop(), 10)
        await asyncio.wait_for(task, 5)
        sink.hold.set()
    mail = await status(pool, "m-1")
    assert mail.state is MailState.UNCERTAIN and "shutdown" in mail.last_error
    assert counter(sender, "uncertain") == 1
