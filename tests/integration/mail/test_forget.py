"""Forgetting a customer's mails (their erasure): whatever the state, the content goes and the record
stays; a mail not yet sent is given up, never sent, and a sender holding it cannot record it as sent."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.mail import queue
from shared.mail.queue import MailState, Outcome
from tests.integration.mail.conftest import outgoing

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def test_forgetting_clears_the_content_and_gives_up_what_was_not_sent(pool):
    async with pool.acquire() as conn:
        await queue.enqueue(conn, [outgoing(i) for i in range(4)], now=NOW)
        claimed = await queue.claim(conn, worker="w-1", now=NOW, lease_seconds=60, limit=1)  # being sent now
        assert [m.mail_id for m in claimed.mails] == ["m-0"], "a claim takes at most its limit"
        await conn.execute("UPDATE mail_queue SET state = 'sent', sent_at = $1, delivered_to = recipients "
                           "WHERE mail_id = 'm-1'", NOW)

        forgotten = await queue.forget(conn, purpose="survey_invitation",
                                       refs=[f"ref-{i}" for i in (0, 1, 2)] + ["ref-unknown"], now=NOW)
        again = await queue.forget(conn, purpose="survey_invitation", refs=["ref-0", "ref-1", "ref-2"], now=NOW)
        rows = {r["mail_id"]: r for r in await conn.fetch("SELECT * FROM mail_queue")}
        late = await queue.finish(conn, {"m-0": Outcome(MailState.SENT)}, worker="w-1", now=NOW)
        due = await queue.claim(conn, worker="w-2", now=NOW, lease_seconds=60, limit=10)

    assert (forgotten, again) == (3, 0)
    for mail_id in ("m-0", "m-1", "m-2"):
        row = rows[mail_id]
        assert (row["message"], row["recipients"], row["delivered_to"], row["forgotten_at"]) == (None, [], [], NOW)
        assert row["message_id"] and row["ref"] == f"ref-{mail_id[-1]}"  # the record stays
    assert rows["m-1"]["state"] == "sent" and rows["m-1"]["last_error"] is None
    assert (rows["m-0"]["state"], rows["m-2"]["state"]) == ("failed", "failed")  # being sent, and pending
    assert rows["m-0"]["claimed_by"] is None and rows["m-2"]["last_error"] == "not sent; its content was forgotten"
    assert rows["m-3"]["forgotten_at"] is None and rows["m-3"]["message"] is not None, "another customer's mail stays"
    assert late == set(), "a sender holding a forgotten mail cannot record it"
    assert [m.mail_id for m in due.mails] == ["m-3"], "a forgotten mail is never claimed again"
