"""A real SMTP server (aiosmtpd) for the mail tests, scriptable: refuse or defer
recipients, answer DATA with 451, slow or hold DATA, or break the connection off
after the message arrived (the relay took it but the reply is lost)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import threading
from email.message import EmailMessage

from aiosmtpd.controller import Controller

from keymoment.devstack.ports import free_port


class SmtpSink:
    """aiosmtpd handler keeping every message it took (``raw``/``messages``/``recipients``)."""

    def __init__(self, *, refuse_first: int = 0, data_delay: float = 0.0) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.recipients: list[list[str]] = []
        self.refused = 0  # DATA answered 451
        self.refuse: dict[str, str] = {}  # address -> a permanent RCPT reply, every time
        self.defer: dict[str, int] = {}  # address -> how many more RCPTs get 450
        self.break_off = 0  # break the connection off after that many messages arrived (no reply)
        self.arrived: list[bytes] = []  # every message whose content arrived, answered or not
        self.drop_reused = 0  # answer MAIL on a reused session with 421 and hang up, that many times
        self.data_delay = data_delay
        self.hold = threading.Event()  # DATA waits while this is clear (set by default)
        self.hold.set()
        self.in_data = threading.Event()  # set once a DATA exchange has started
        self.sessions = 0  # EHLO/HELO: one per connection
        self.rsets = 0
        self.port = 0
        self._refuse_first = refuse_first

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # noqa: N802 - aiosmtpd API
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RSET(self, server, session, envelope):  # noqa: N802
        self.rsets += 1
        return "250 OK"

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # noqa: N802
        transactions = getattr(session, "km_transactions", 0)
        session.km_transactions = transactions + 1
        if transactions and self.drop_reused > 0:  # the relay dropped an idle session
            self.drop_reused -= 1
            server.transport.close()
            return "421 4.4.2 idle too long, closing"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        if self.defer.get(address, 0) > 0:
            self.defer[address] -= 1
            return "450 4.2.1 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        data = envelope.original_content or envelope.content
        self.arrived.append(data)
        self.in_data.set()
        while not self.hold.is_set():
            await asyncio.sleep(0.01)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        if self.refused < self._refuse_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        if self.break_off > 0:  # taken, but the reply never arrives
            self.break_off -= 1
            server.transport.abort()
            return "250 OK (never arrives)"
        self.raw.append(data)
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(data, policy=email.policy.default))
        return "250 OK"

    def message_ids(self) -> list[str]:
        return [m["Message-ID"] for m in self.messages]


class SmtpServer:
    """Runs a :class:`SmtpSink` on a port of its own; may be stopped and started again (an outage)."""

    def __init__(self, handler: SmtpSink, port: int | None = None) -> None:
        self.handler = handler
        self.port = handler.port = port or free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpSink:
        self.start()
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self.stop()
