"""The email channel's limits through the real SMTP listener and POST /v1/email: per-peer connections
and message rate, trusted relays, the parse budget, Message-ID + sender duplicates, and a 10 MB mail
that costs the event loop nothing."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

import aiosmtplib
import pytest

from keymoment.devstack.ports import free_port
from services.intake.app import create_app
from tests.integration.intake_channels.support import dev_key, intake_settings, received
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

FEEDBACK_BOX = "feedback@example.com"


def mail(sender: str = "li.wei@example.cn", message_id: str = "<m-1@example.cn>", body: str = "排队两个小时，没人管。") -> bytes:
    return (f"From: Li Wei <{sender}>\r\nTo: {FEEDBACK_BOX}\r\nSubject: 投诉\r\nMessage-ID: {message_id}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def smtp(port: int) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=10)


async def test_per_peer_connection_and_message_limits(service_env):
    port = free_port()
    settings = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                               intake_smtp_max_connections_per_peer=2, intake_smtp_messages_per_minute_per_peer=2)
    async with running(create_app(settings)):
        first, second = smtp(port), smtp(port)
        await first.connect()
        await second.connect()
        third = smtp(port)
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
            await third.connect()
        assert refused.value.code == 421
        await second.quit()

        # Two messages a minute from this address; the third MAIL FROM is told to come back later.
        for n in (1, 2):
            await first.sendmail("li.wei@example.cn", [FEEDBACK_BOX], mail(message_id=f"<rate-{n}@example.cn>"))
        with pytest.raises(aiosmtplib.SMTPSenderRefused) as limited:
            await first.sendmail("li.wei@example.cn", [FEEDBACK_BOX], mail(message_id="<rate-3@example.cn>"))
        assert limited.value.code == 451 and "4.7.1" in limited.value.message
        await first.quit()

        # The slots are given back: a new connection is served again.
        again = smtp(port)
        await again.connect()
        await again.quit()


async def test_only_trusted_relays_are_served_and_they_are_not_limited(service_env):
    port = free_port()
    outsider = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                               intake_smtp_trusted_relays="192.0.2.0/24")
    async with running(create_app(outsider)):
        with pytest.raises(aiosmtplib.SMTPConnectResponseError) as refused:
            await smtp(port).connect()
        assert refused.value.code == 554

    port = free_port()
    relay = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                            intake_smtp_trusted_relays="127.0.0.0/8", intake_smtp_max_connections_per_peer=1,
                            intake_smtp_messages_per_minute_per_peer=1)
    async with running(create_app(relay)):
        connections = [smtp(port) for _ in range(3)]
        for connection in connections:
            await connection.connect()
        for n, connection in enumerate(connections):
            errors, reply = await connection.sendmail("gw@example.com", [FEEDBACK_BOX], mail(message_id=f"<r-{n}@x>"))
            assert reply.startswith("2.0.0 OK accepted"), reply
            await connection.quit()


async def test_nul_message_id_duplicates_by_sender_and_the_parse_budget(service_env, kafka_bootstrap):
    port = free_port()
    settings = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                               intake_smtp_trusted_relays="127.0.0.1")
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        def post(raw: bytes):
            return http.post("/v1/email", content=raw, headers={"Content-Type": "message/rfc822"})

        send = dict(hostname="127.0.0.1", port=port, sender="li.wei@example.cn", recipients=[FEEDBACK_BOX], timeout=10)
        nul = mail(message_id="<nul\x00id@example.cn>")
        with pytest.raises(aiosmtplib.SMTPDataError) as smtp_refused:
            await aiosmtplib.send(nul, **send)
        assert smtp_refused.value.code == 554 and "U+0000" in smtp_refused.value.message
        http_refused = await post(nul)
        assert http_refused.status_code == 422 and "U+0000" in http_refused.json()["detail"], http_refused.text

        # The same Message-ID from another sender is another message; from the same sender, a duplicate.
        a = await post(mail(sender="a@example.com", message_id="<shared@example.com>"))
        b = await post(mail(sender="b@example.com", message_id="<shared@example.com>"))
        a_again = await post(mail(sender="A@Example.com", message_id="<shared@example.com>"))
        assert (a.status_code, b.status_code, a_again.status_code) == (202, 202, 200)
        assert a.json()["id"] != b.json()["id"] and a_again.json() | {"reason": None} == {
            "status": "duplicate", "id": a.json()["id"], "message_id": "<shared@example.com>",
            "first_status": "accepted", "reason": None,
        }

        # Over the parse budget: recorded and refused for good, and the parser is replaced.
        intake.runtime.email_channel.parser.timeout = 0.05
        slow = (b"From: a@example.com\r\nMessage-ID: <slow@example.com>\r\nContent-Type: text/html\r\n\r\n"
                + b"<div><p>bad <b>service</b> &amp; rude</p></div>\r\n" * 100_000)
        too_slow = await post(slow)
        assert too_slow.status_code == 422 and "too complex to read" in too_slow.json()["detail"]
        intake.runtime.email_channel.parser.timeout = 30

        async def parser_back() -> bool:
            return intake.runtime.email_channel.parser.alive and (await http.get("/readyz")).status_code == 200

        await wait_until(parser_back, timeout=30, what="a replacement mail parser")
        assert (await post(mail(message_id="<after@example.cn>"))).status_code == 202

        async def three_events() -> bool:
            return len(await received(kafka_bootstrap, settings)) >= 3

        await wait_until(three_events, timeout=20, what="three email events")
        events = await received(kafka_bootstrap, settings)
    assert sorted(e.customer.email for e in events) == ["a@example.com", "b@example.com", "li.wei@example.cn"]


SEND_MAIL = """
import smtplib, sys
raw = sys.stdin.buffer.read()
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=120) as client:
    client.ehlo()
    client.mail("li.wei@example.cn")
    client.rcpt("feedback@example.com")
    code, reply = client.data(raw)
    print(code, reply.decode())
"""


def _big_html_mail() -> bytes:
    """~9.8 MB of HTML: seconds of CPU to parse if it ran on the event loop."""
    return (b"From: Li Wei <li.wei@example.cn>\r\nTo: feedback@example.com\r\nSubject: big\r\n"
            b"Message-ID: <big@example.cn>\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
            + b"<div><p>bad <b>service</b> &amp; rude</p></div>\r\n" * 200_000)


async def test_dot_stuffed_lines_and_pipelined_commands_survive_the_chunked_data_reader(service_env):
    port = free_port()
    settings = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                               intake_smtp_trusted_relays="127.0.0.1")
    async with running(create_app(settings)) as intake:
        body = ".leading dot\r\n..two dots\r\nlast line"
        client = smtp(port)
        await client.connect()
        for n in range(3):  # one session, several messages: what follows each terminator reaches the command loop
            errors, reply = await client.sendmail("li.wei@example.cn", [FEEDBACK_BOX],
                                                  mail(message_id=f"<dots-{n}@example.cn>", body=body))
            assert reply.startswith("2.0.0 OK accepted"), reply
        await client.quit()
        feedback_id = reply.split()[-1]
        record = await intake.runtime.pool.fetchrow("SELECT size_bytes FROM email_messages WHERE feedback_id = $1",
                                                    feedback_id)
    assert record["size_bytes"] == len(mail(message_id="<dots-2@example.cn>", body=body))


async def test_a_10_mb_mail_does_not_delay_feedback_posts(service_env, capsys):
    """While a 10 MB mail arrives over SMTP and is parsed, POST /v1/feedback keeps answering promptly.

    The figure to report is printed; the assertion is generous (this is not a benchmark)."""
    port = free_port()
    settings = intake_settings(service_env, intake_smtp_port=port, intake_email_addresses=FEEDBACK_BOX,
                               intake_smtp_trusted_relays="127.0.0.1")
    big = _big_html_mail()
    assert len(big) < settings.intake_email_max_bytes
    async with running(create_app(settings)) as intake, intake.client(headers={"X-API-Key": dev_key(intake)}) as http:
        body = {"channel": "web", "text": "Checkout froze twice"}
        for _ in range(20):  # warm up connections and code paths
            assert (await http.post("/v1/feedback", json=body)).status_code == 202

        async def post_until(done: asyncio.Event) -> list[float]:
            latencies = []
            while not done.is_set():
                started = time.perf_counter()
                response = await http.post("/v1/feedback", json=body)
                latencies.append(time.perf_counter() - started)
                assert response.status_code == 202
                await asyncio.sleep(0.005)
            return latencies

        quiet = asyncio.Event()
        baseline_posting = asyncio.create_task(post_until(quiet))
        await asyncio.sleep(1.5)  # the same posts with no mail arriving: this harness's own latency
        quiet.set()
        baseline = await baseline_posting

        done = asyncio.Event()
        posting = asyncio.create_task(post_until(done))
        started = time.perf_counter()
        try:  # the sending server is another process, as it would be another machine
            sender = await asyncio.create_subprocess_exec(
                sys.executable, "-c", SEND_MAIL, str(port), stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(sender.communicate(big), 120)
        finally:
            done.set()
        mail_seconds = time.perf_counter() - started
        latencies = await posting
    assert sender.returncode == 0, err.decode()
    assert out.decode().startswith("250 2.0.0 OK accepted"), out
    assert len(latencies) >= 20, f"only {len(latencies)} posts while the mail took {mail_seconds:.2f} s"
    def p99_of(values: list[float]) -> float:
        return statistics.quantiles(values, n=100, method="inclusive")[98]

    p99 = p99_of(latencies)
    with capsys.disabled():
        print(f"\nPOST /v1/feedback without mail: {len(baseline)} posts, p50 {statistics.median(baseline) * 1000:.1f} ms, "
              f"p99 {p99_of(baseline) * 1000:.1f} ms; while a 10 MB mail arrived over SMTP and was parsed "
              f"({mail_seconds:.2f} s to 250): {len(latencies)} posts, p50 {statistics.median(latencies) * 1000:.1f} ms, "
              f"p99 {p99 * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms")
    assert p99 < 0.25, f"p99 {p99 * 1000:.0f} ms while a 10 MB mail was parsed"
