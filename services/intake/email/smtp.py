"""The SMTP listener of the email channel (aiosmtpd, in the service's event loop).

Only configured recipients are accepted (550 otherwise); mail over the size
limit is refused with 552 by aiosmtpd itself (SIZE is advertised in EHLO);
a message that cannot be feedback is recorded and refused with 554; when the
database is away the sender is told to retry later (451). Nothing a client
sends can take the listener down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from aiosmtpd.smtp import SMTP, Envelope, Session

from services.intake.email.parse import REJECTED
from services.intake.email.service import EmailOutcome

logger = logging.getLogger(__name__)

Receive = Callable[[bytes, str], Awaitable[EmailOutcome]]


class FeedbackMailHandler:
    """aiosmtpd handler: RCPT filtering and one :data:`Receive` call per message."""

    def __init__(self, addresses: set[str], receive: Receive) -> None:
        self.addresses = {a.strip().lower() for a in addresses if a.strip()}
        self.receive = receive

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
        except Exception as exc:
            logger.error("email not recorded; asking the sender to retry", extra={"size": len(raw), "error": repr(exc)})
            return "451 4.3.0 Temporary failure, please try again later"
        if REJECTED in (outcome.status, outcome.first_status):  # a resent rejected mail is still rejected
            return f"554 5.6.0 Message rejected: {outcome.reason}"[:500]
        return f"250 2.0.0 OK {outcome.status} {outcome.feedback_id or ''}".rstrip()


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
        return SMTP(
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


def install_email(runtime, settings) -> None:  # noqa: ANN001 - ServiceRuntime, IntakeSettings (no import cycle)
    """The email channel's metrics, and the SMTP listener with the service when ``INTAKE_SMTP_PORT``
    is set (0 or unset: off; ``POST /v1/email`` works either way)."""
    from services.intake.email.metrics import emails_counter
    from services.intake.email.service import receive_email
    from shared.events import FEEDBACK_RECEIVED

    counter = emails_counter(runtime)
    runtime.retain("email_messages", "received_at", settings.intake_email_record_days)
    if not settings.intake_smtp_port:
        return
    topic = settings.topic(FEEDBACK_RECEIVED.topic)

    async def receive(raw: bytes, recipient: str) -> EmailOutcome:
        outcome = await receive_email(raw, pool=runtime.pool, topic=topic, via="smtp", source="email-smtp", recipient=recipient)
        counter.labels("smtp", outcome.status).inc()
        return outcome

    listener = SmtpListener(
        FeedbackMailHandler(settings.email_addresses, receive),
        host=settings.intake_smtp_host, port=settings.intake_smtp_port, data_size_limit=settings.intake_email_max_bytes,
    )
    runtime.smtp_listener = listener

    async def start(_) -> None:  # noqa: ANN001
        await listener.start()

    async def stop(_) -> None:  # noqa: ANN001
        await listener.stop()

    async def ready() -> str | None:
        return None if listener.serving else f"smtp listener on port {listener.port} is not serving"

    runtime.on_start(start)
    runtime.on_stop(stop)
    runtime.readiness_check(ready)
