"""The mail queue's deferred mail, withdrawal, and the owner's hook on settled attempts, on a real
PostgreSQL and SMTP server."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import CollectorRegistry

from shared.clock import ManualClock, SystemClock
from shared.mail import queue
from shared.mail.metrics import MailMetrics
from shared.mail.queue import MailState
from shared.mail.sender import MailSender
from tests.integration.mail.conftest import PURPOSES, SCHEMA, mail_settings, outgoing, sending
from tests.integration.mail.smtp import SmtpServer, SmtpSink
from tests.support.services import wait_until

pytestmark = pytest.mark.integration

T0 = datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


async def test_a_deferred_mail_waits_for_its_time_and_a_pending_one_can_be_withdrawn(pool):
    clock = ManualClock(T0)
    later = dataclasses.replace(outgoing(1), not_before=T0 + timedelta(hours=10))
    taken_back = dataclasses.replace(outgoing(2), not_before=T0 + timedelta(hours=10))
    async with pool.acquire() as conn:
        assert sorted(await queue.enqueue(conn, [later, taken_back, outgoing(3)], now=T0)) == ["m-1", "m-2", "m-3"]
        due = await queue.statuses(conn, ["m-1", "m-3"])
        assert due["m-1"].next_attempt_at == T0 + timedelta(hours=10) and due["m-3"].next_attempt_at == T0
        # it counts as created when due: the oldest-pending age says how late a mail is, not how long it waited
        assert due["m-1"].created_at == T0 + timedelta(hours=10)
        assert await queue.withdraw(conn, ["m-2", "m-404"]) == ["m-2"]
    with SmtpServer(SmtpSink()) as smtp:
        sender = MailSender(mail_settings(smtp.port), schema=SCHEMA, metrics=MailMetrics(CollectorRegistry(), PURPOSES),
                            clock=clock)
        async with sending(sender, pool):
            await wait_until(lambda: len(smtp.messages) == 1, timeout=10, what="the mail due now")
            rounds = sender.rounds
            await wait_until(lambda: sender.rounds >= rounds + 3, timeout=10, what="the sender looking again")
            assert len(smtp.messages) == 1
            async with pool.acquire() as conn:
                assert await queue.withdraw(conn, ["m-3"]) == []  # sent: it stays
            clock.advance(hours=10)
            sender.wake()
            await wait_until(lambda: len(smtp.messages) == 2, timeout=10, what="the deferred mail")
    assert smtp.message_ids() == [outgoing(3).message_id, outgoing(1).message_id]


async def test_the_owner_hears_of_delivered_and_refused_recipients_in_the_recording_transaction(pool):
    heard: list[tuple[str, MailState, tuple[str, ...], tuple[str, ...]]] = []

    async def settled(conn, mail, outcome) -> None:
        assert conn.is_in_transaction()
        state = await conn.fetchval("SELECT state FROM mail_queue WHERE mail_id = $1", mail.mail_id)
        heard.append((mail.mail_id, MailState(state), tuple(outcome.delivered), tuple(outcome.refused)))

    with SmtpServer(SmtpSink(refuse_first=1)) as smtp:
        smtp.refuse["gone@example.cn"] = "550 5.1.1 no such user"
        sender = MailSender(mail_settings(smtp.port), schema=SCHEMA, metrics=MailMetrics(CollectorRegistry(), PURPOSES),
                            clock=SystemClock(), on_settled=settled)
        async with pool.acquire() as conn:
            await queue.enqueue(conn, [outgoing(1, to=("a@example.cn", "gone@example.cn")),
                                       outgoing(2, to=("gone@example.cn",))], now=T0)
        async with sending(sender, pool):
            await wait_until(lambda: len(heard) == 3, timeout=15, what="both mails settled")
    # m-1's first attempt: gone@ refused at RCPT (settled), the DATA answered 451 (a@ not settled, retried);
    # its second attempt delivered to a@ alone. Each recipient is heard of once.
    assert sorted(heard) == [("m-1", MailState.PENDING, (), ("gone@example.cn",)),
                             ("m-1", MailState.SENT, ("a@example.cn",), ()),
                             ("m-2", MailState.FAILED, (), ("gone@example.cn",))]
    assert smtp.refused == 1


async def committed_groups(pool, heard: list[tuple[int, str]]) -> list[list[str]]:
    """The mails of each committed transaction among the (transaction id, mail) the hook heard of."""
    async with pool.acquire() as conn:
        status = {t: await conn.fetchval("SELECT txid_status($1)", t) for t in {t for t, _ in heard}}
    return [[m for t, m in heard if t == txid] for txid, s in status.items() if s == "committed"]


def hearing(heard: list[tuple[int, str]], *, first_delay: float = 0.0, refuse=lambda mail_id: False):
    async def settled(conn, mail, outcome) -> None:
        if not heard and first_delay:
            await asyncio.sleep(first_delay)
        heard.append((await conn.fetchval("SELECT txid_current()"), mail.mail_id))
        if refuse(mail.mail_id):
            raise RuntimeError(f"the owner cannot record {mail.mail_id} yet")
    return settled


async def test_outcomes_finishing_while_one_is_written_are_written_together(pool):
    heard: list[tuple[int, str]] = []
    with SmtpServer(SmtpSink()) as smtp:
        sender = MailSender(mail_settings(smtp.port, mail_concurrency=4), schema=SCHEMA,
                            metrics=MailMetrics(CollectorRegistry(), PURPOSES), clock=SystemClock(),
                            on_settled=hearing(heard, first_delay=0.3))  # the first write is slow
        async with pool.acquire() as conn:
            await queue.enqueue(conn, [outgoing(i) for i in range(12)], now=T0)
        async with sending(sender, pool):
            await wait_until(lambda: len(heard) == 12, timeout=15, what="every mail recorded")
    groups = await committed_groups(pool, heard)
    assert sorted(sum(groups, [])) == sorted(f"m-{i}" for i in range(12)), "each outcome committed once"
    assert max(len(g) for g in groups) > 1, "outcomes waiting together are written in one transaction"
    assert len(smtp.messages) == 12


async def test_a_mail_whose_outcome_cannot_be_recorded_holds_up_no_other(pool):
    """A group whose write fails is retried one mail at a time, beside the next groups."""
    release = asyncio.Event()
    heard: list[tuple[int, str]] = []
    others = [f"m-{i}" for i in range(1, 12)]

    async def states() -> dict[str, MailState]:
        return {m: s.state for m, s in (await queue.statuses(pool, ["m-0", *others])).items()}

    with SmtpServer(SmtpSink()) as smtp:
        sender = MailSender(mail_settings(smtp.port, mail_concurrency=4), schema=SCHEMA,
                            metrics=MailMetrics(CollectorRegistry(), PURPOSES), clock=SystemClock(),
                            on_settled=hearing(heard, refuse=lambda m: m == "m-0" and not release.is_set()))
        async with pool.acquire() as conn:
            await queue.enqueue(conn, [outgoing(i) for i in range(12)], now=T0)
        async with sending(sender, pool):
            async def others_recorded() -> bool:
                now = await states()
                return all(now[m] is MailState.SENT for m in others)

            await wait_until(others_recorded, timeout=15, what="every mail but m-0 recorded")
            held = (await states())["m-0"]
            release.set()
            await wait_until(lambda: states_now(pool, "m-0", MailState.SENT), timeout=15, what="m-0 recorded at last")
    groups = await committed_groups(pool, heard)
    assert held is MailState.SENDING, "m-0 waits for its owner"
    assert sorted(sum(groups, [])) == sorted(["m-0", *others]), "each mail's outcome committed once"
    assert len(smtp.messages) == 12, "each mail sent once"


async def states_now(pool, mail_id: str, state: MailState) -> bool:
    return (await queue.statuses(pool, [mail_id]))[mail_id].state is state
