"""The SMTP listener of the email channel (aiosmtpd, in the service's event loop).

Limits before work, per RFC 5321's answers:

* **Who may connect.** With ``INTAKE_SMTP_TRUSTED_RELAYS`` set, only those
  networks (the company's own mail gateway forwarding the feedback mailbox)
  are served; anyone else gets ``554 5.7.1`` instead of a greeting. Trusted
  relays are exempt from the per-peer limits below.
* **Connections.** At most ``INTAKE_SMTP_MAX_CONNECTIONS`` at once and
  ``INTAKE_SMTP_MAX_CONNECTIONS_PER_PEER`` per client address; above that the
  client gets ``421 4.7.0`` (try again later) and the connection is closed.
* **Messages.** Each client address may start
  ``INTAKE_SMTP_MESSAGES_PER_MINUTE_PER_PEER`` messages a minute (a token
  bucket); beyond that ``MAIL FROM`` is answered ``451 4.7.1`` (try later).
* **Size.** Mail over ``INTAKE_EMAIL_MAX_BYTES`` is refused with 552 by
  aiosmtpd, which counts while reading and discards what is over the limit
  (SIZE is advertised in EHLO, and a declared SIZE above it is refused at
  ``MAIL FROM``).

Only configured recipients are accepted (550 otherwise). A message that cannot
be feedback (or could not be read within the parse budget) is recorded and
refused with 554; when the database is away or every parser is busy the
sender is told to retry later (451). Nothing a client sends can take the
listener down.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from services.intake.email.parse import REJECTED
from services.intake.email.service import EmailOutcome
from services.intake.email.worker import MailParser
from services.intake.keys import TokenBucket

logger = logging.getLogger(__name__)

Receive = Callable[[bytes, str], Awaitable[EmailOutcome]]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address, try again later"
SERVER_BUSY = "421 4.7.0 Too many connections, try again later"
NOT_A_RELAY = "554 5.7.1 This feedback listener only accepts mail from its configured relays"
TOO_MANY_MESSAGES = "451 4.7.1 Too many messages from your address, try again later"
_TOO_MUCH = object()


def parse_networks(value: str) -> tuple[Network, ...]:
    """``10.0.0.0/8, 192.0.2.7, 2001:db8::/32`` as networks (a bare address is a /32 or /128)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


@dataclass
class PeerLimits:
    """Connection and message limits per client address (see the module docstring)."""

    max_connections: int = 100
    max_connections_per_peer: int = 10
    messages_per_minute_per_peer: int = 60
    trusted_relays: tuple[Network, ...] = ()
    _connections: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.trusted_relays)

    def admit(self, host: str) -> str | None:
        """Take a connection slot for ``host``; the refusal to send instead of a greeting, if any."""
        trusted = self.trusted(host)
        if self.trusted_relays and not trusted:
            return NOT_A_RELAY
        if sum(self._connections.values()) >= self.max_connections:
            return SERVER_BUSY
        if not trusted and self._connections.get(host, 0) >= self.max_connections_per_peer:
            return TOO_MANY_CONNECTIONS
        self._connections[host] = self._connections.get(host, 0) + 1
        return None

    def release(self, host: str) -> None:
        left = self._connections.get(host, 0) - 1
        if left > 0:
            self._connections[host] = left
        else:
            self._connections.pop(host, None)

    def allow_message(self, host: str) -> bool:
        if self.trusted(host):
            return True
        bucket = self._buckets.get(host)
        if bucket is None:
            if len(self._buckets) >= 10_000:  # forget idle peers (their buckets are full again anyway)
                self._buckets = {h: b for h, b in self._buckets.items() if h in self._connections}
            rate = self.messages_per_minute_per_peer
            bucket = self._buckets[host] = TokenBucket(rate / 60.0, rate)
        return bucket.take() == 0.0


class FeedbackMailHandler:
    """aiosmtpd handler: message rate per peer, RCPT filtering and one :data:`Receive` call per message."""

    def __init__(self, addresses: set[str], receive: Receive, limits: PeerLimits | None = None) -> None:
        self.addresses = {a.strip().lower() for a in addresses if a.strip()}
        self.receive = receive
        self.limits = limits or PeerLimits()

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope, address: str, mail_options: list[str]) -> str:  # noqa: N802
        if not self.limits.allow_message(_host(session.peer)):
            return TOO_MANY_MESSAGES
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]) -> str:  # noqa: N802
        if address.strip().lower() not in self.addresses:
            return "550 5.1.1 Recipient address rejected: not a feedback mailbox"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            outcome = await self.receive(raw, envelope.rcpt_tos[0] if envelope.rcpt_tos else "")
        except Exception as exc:  # the database away, every parser busy: nothing recorded, the sender retries
            logger.warning("email not recorded; asking the sender to retry",
                           extra={"size": len(raw), "error": type(exc).__name__})
            return "451 4.3.0 Temporary failure, please try again later"
        if REJECTED in (outcome.status, outcome.first_status):  # a resent rejected mail is still rejected
            return f"554 5.6.0 Message rejected: {outcome.reason}"[:500]
        return f"250 2.0.0 OK {outcome.status} {outcome.feedback_id or ''}".rstrip()


def _host(peer: object) -> str:
    """The address part of aiosmtpd's ``session.peer`` (a (host, port, ...) tuple)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer)


class _LimitedSMTP(SMTP):
    """aiosmtpd's protocol with a connection gate: over a limit the client gets the refusal instead of
    a greeting and the connection closes before any session exists."""

    def __init__(self, handler: FeedbackMailHandler, **kwargs) -> None:  # noqa: ANN003
        super().__init__(handler, **kwargs)
        self._limits = handler.limits
        self._admitted: str | None = None
        self._refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._admitted is None and not self._refused:  # (again after STARTTLS: already admitted)
            host = _host(transport.get_extra_info("peername"))
            if refusal := self._limits.admit(host):
                self._refused = True
                logger.info("smtp connection refused", extra={"peer": host, "reply": refusal[:3]})
                transport.write(f"{refusal}\r\n".encode())
                transport.close()
                return
            self._admitted = host
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._admitted is not None:
            self._limits.release(self._admitted)
            self._admitted = None
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802
        """DATA read in chunks instead of line by line: aiosmtpd's per-line loop held the event loop for
        20-130 ms at a time while a 10 MB mail arrived. Bytes over the size limit are counted and
        discarded as they arrive (552 at the end), as aiosmtpd does."""
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        body = await self._read_data()
        if body is None:  # the connection closed mid-DATA
            return
        if body is _TOO_MUCH:
            self._set_post_data_state()
            await self.push("552 Error: Too much mail data")
            return
        # Undo dot-stuffing (RFC 5321 4.5.2) in C: a line starting with ".." carries one ".".
        original = body.replace(b"\r\n..", b"\r\n.")
        if original.startswith(b".."):
            original = original[1:]
        self.envelope.content = self.envelope.original_content = original
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytes | object | None:
        """The message up to ``CRLF.CRLF`` (exclusive of the terminator, with its last CRLF); ``_TOO_MUCH``
        over the limit; None if the connection closed. Bytes after the terminator (pipelined commands)
        go back to the reader for the command loop."""
        limit = self.data_size_limit
        buffer = bytearray(b"\r\n")  # the CRLF that ended "DATA": an empty message's "." is a terminator too
        too_much = False
        while self.transport is not None:
            chunk = await self._reader.read(1 << 16)
            if not chunk:
                return None
            scan_from = max(0, len(buffer) - 4)
            buffer += chunk
            end = buffer.find(b"\r\n.\r\n", scan_from)
            if end >= 0:
                leftover = bytes(buffer[end + 5:])
                if leftover:
                    self._reader._buffer[:0] = leftover  # noqa: SLF001 - aiosmtpd's own reader
                if too_much:
                    return _TOO_MUCH
                return bytes(buffer[2:end + 2])
            if too_much or (limit and len(buffer) - 2 > limit):
                too_much = True
                del buffer[:-4]  # keep only what a terminator split across chunks needs
        return None


class SmtpListener:
    """Start/stop an aiosmtpd server in the running loop."""

    def __init__(self, handler: FeedbackMailHandler, *, host: str, port: int, data_size_limit: int, hostname: str = "keymoment-intake") -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.data_size_limit = data_size_limit
        self.hostname = hostname
        self._server: asyncio.base_events.Server | None = None

    def _protocol(self) -> SMTP:
        return _LimitedSMTP(
            self.handler, data_size_limit=self.data_size_limit, enable_SMTPUTF8=True, decode_data=False,
            hostname=self.hostname, ident="Keymoment intake ESMTP", timeout=120,
        )

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host=self.host, port=self.port)
        self.port = self._server.sockets[0].getsockname()[1]  # port 0 in tests: the one the OS chose
        logger.info("smtp listener started", extra={"host": self.host, "port": self.port})

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        try:
            async with asyncio.timeout(5):
                await self._server.wait_closed()
        except TimeoutError:
            logger.warning("smtp sessions still open at shutdown")
        self._server = None


@dataclass(frozen=True)
class EmailChannel:
    """The email channel's parts, kept on the runtime (``runtime.email_channel``) for the HTTP route."""

    parser: MailParser
    topic: str
    privacy_key: bytes  # PRIVACY_HASH_KEY: senders are recorded as pseudonyms, events keyed by them
    listener: SmtpListener | None = None

    async def receive(self, raw: bytes, *, pool, via: str, source: str, recipient: str | None = None) -> EmailOutcome:  # noqa: ANN001
        from services.intake.email.service import receive_email

        return await receive_email(raw, parse=self.parser.parse, pool=pool, topic=self.topic, via=via,
                                   source=source, recipient=recipient, privacy_key=self.privacy_key)


def install_email(runtime, settings) -> None:  # noqa: ANN001 - ServiceRuntime, IntakeSettings (no import cycle)
    """The email channel: its mail parser processes, its metrics, and the SMTP listener with the
    service when ``INTAKE_SMTP_PORT`` is set (0 or unset: off; ``POST /v1/email`` works either way)."""
    from services.intake.email.metrics import emails_counter
    from shared.events import FEEDBACK_RECEIVED

    counter = emails_counter(runtime)
    runtime.retain("email_messages", "received_at", settings.intake_email_record_days)
    parser = MailParser(workers=settings.intake_email_parse_workers, timeout=settings.intake_email_parse_timeout_seconds)
    listener = None
    if settings.intake_smtp_port:
        limits = PeerLimits(
            max_connections=settings.intake_smtp_max_connections,
            max_connections_per_peer=settings.intake_smtp_max_connections_per_peer,
            messages_per_minute_per_peer=settings.intake_smtp_messages_per_minute_per_peer,
            trusted_relays=parse_networks(settings.intake_smtp_trusted_relays),
        )

        async def receive(raw: bytes, recipient: str) -> EmailOutcome:
            outcome = await channel.receive(raw, pool=runtime.pool, via="smtp", source="email-smtp", recipient=recipient)
            counter.labels("smtp", outcome.status).inc()
            return outcome

        listener = SmtpListener(
            FeedbackMailHandler(settings.email_addresses, receive, limits),
            host=settings.intake_smtp_host, port=settings.intake_smtp_port,
            data_size_limit=settings.intake_email_max_bytes,
        )
    channel = EmailChannel(parser=parser, topic=settings.topic(FEEDBACK_RECEIVED.topic),
                           privacy_key=settings.privacy_key(), listener=listener)
    runtime.email_channel = channel
    runtime.smtp_listener = listener

    async def start(_) -> None:  # noqa: ANN001
        await parser.start()
        if listener is not None:
            await listener.start()

    async def stop(_) -> None:  # noqa: ANN001
        if listener is not None:
            await listener.stop()
        await parser.stop()

    async def ready() -> str | None:
        if not parser.alive:
            return "mail parser processes are not running"
        if listener is not None and not listener.serving:
            return f"smtp listener on port {listener.port} is not serving"
        return None

    runtime.on_start(start)
    runtime.on_stop(stop)
    runtime.readiness_check(ready)
