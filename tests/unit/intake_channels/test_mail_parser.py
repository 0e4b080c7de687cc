"""Mail parsing in worker processes: results as parse_email gives them, a time budget, a bounded queue."""

import asyncio
import time

import pytest

from services.intake.email.parse import FEEDBACK, parse_email
from services.intake.email.worker import MailParser, ParseTimeout, ParserBusy

MAIL = "From: 王芳 <wang@example.cn>\r\nSubject: 投诉\r\n\r\n排队两个小时。\r\n".encode()


async def test_parses_in_a_worker_process_like_in_process():
    parser = MailParser(workers=1, timeout=30)
    await parser.start()
    try:
        assert parser.alive
        parsed = await parser.parse(MAIL)
        assert parsed == parse_email(MAIL) and parsed.status == FEEDBACK
        assert [p.pid for p in (w.process for w in parser._all)] != [None]
    finally:
        await parser.stop()
    assert not parser.alive


async def test_a_mail_over_the_budget_is_refused_and_the_worker_replaced():
    slow = (b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n"
            + b"<div><p>bad <b>service</b> &amp; rude</p></div>\r\n" * 200_000)  # ~1 s of parsing
    parser = MailParser(workers=1, timeout=0.05)
    await parser.start()
    try:
        [worker] = parser._all
        with pytest.raises(ParseTimeout):
            await parser.parse(slow)
        assert parser.timeouts == 1
        deadline = time.monotonic() + 30
        while not (parser._all and parser.alive):  # a fresh worker takes its place
            assert time.monotonic() < deadline, "no replacement worker"
            await asyncio.sleep(0.05)
        assert worker not in parser._all and not worker.process.is_alive()
        parser.timeout = 30
        assert (await parser.parse(MAIL)).status == FEEDBACK
    finally:
        await parser.stop()


async def test_too_many_waiting_is_busy_at_once():
    parser = MailParser(workers=1, timeout=30, max_waiting=0)
    await parser.start()
    try:
        with pytest.raises(ParserBusy):
            await parser.parse(MAIL)
    finally:
        await parser.stop()
