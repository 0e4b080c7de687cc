"""One persistent SMTP session to the relay, and what an attempt learned.

A session stays open between mails: a finished transaction leaves it ready for
the next ``MAIL`` (no ``RSET`` per mail). A relay that dropped the idle session
is reconnected once before ``MAIL``, when nothing has been sent yet. The only
window in which the outcome can be unknown is the DATA exchange.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiosmtplib

from shared.mail.settings import MailSettings


@dataclass(frozen=True)
class Delivery:
    """What the relay answered for one transaction."""

    accepted: tuple[str, ...] = ()  # it took the message for these
    refused: dict[str, str] = field(default_factory=dict)  # permanent (5xx) refusals: never retried
    deferred: dict[str, str] = field(default_factory=dict)  # transient (4xx) refusals: try these again later


class NotSent(Exception):
    """The relay took nothing in this attempt and may later (unreachable, timeout, 4xx,
    a refused MAIL FROM: a fault of the relay or of our configuration, not of the mail)."""


class OutcomeUnknown(Exception):
    """The DATA exchange broke off: the relay may or may not have taken the message."""


def _permanent(code: int) -> bool:
    return 500 <= code < 600


class SmtpSession:
    """One connection to the relay, (re)opened on demand; used by one sender worker at a time."""

    def __init__(self, settings: MailSettings) -> None:
        self._settings = settings
        self._client: aiosmtplib.SMTP | None = None
        self.in_data = False  # True while the DATA exchange runs: a cut now leaves the outcome unknown

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self._settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host, port=s.smtp_port, timeout=s.mail_smtp_timeout_seconds,
            start_tls=bool(s.smtp_starttls),  # False, not None: no opportunistic STARTTLS
            username=s.smtp_username, password=s.smtp_password.get_secret_value() if s.smtp_password else None,
        )
        await client.connect()
        return client

    async def close(self) -> None:
        """End the session politely (QUIT), e.g. on shutdown."""
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.quit(), 2)
            client.close()

    def _drop(self) -> None:
        """Abandon a session in an unknown state; the next mail opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def _begin(self, envelope_from: str) -> aiosmtplib.SMTP:
        """``MAIL FROM`` on an open session; a reused session the relay dropped while idle
        (disconnect, timeout, 421) is reopened once: nothing has been sent yet."""
        reused = self._client is not None and self._client.is_connected
        if not reused:
            self._drop()
            self._client = await self._connect()
        try:
            await self._client.mail(envelope_from)
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, OSError,
                aiosmtplib.SMTPResponseException) as exc:
            if not reused or (isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code != 421):
                raise
            self._drop()
            self._client = await self._connect()
            await self._client.mail(envelope_from)
        return self._client

    async def deliver(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> Delivery:
        """One SMTP transaction. Returns per-recipient answers; raises :class:`NotSent`
        (nothing taken, try again later) or :class:`OutcomeUnknown` (DATA broke off)."""
        try:
            return await self._transaction(envelope_from, recipients, message)
        except asyncio.CancelledError:  # cut off mid-conversation: the session's state is unknown
            self._drop()
            raise
        finally:
            self.in_data = False

    async def _transaction(self, envelope_from: str, recipients: Sequence[str], message: bytes) -> Delivery:
        refused: dict[str, str] = {}
        deferred: dict[str, str] = {}
        accepted: list[str] = []
        try:
            client = await self._begin(envelope_from)
            for rcpt in recipients:
                try:
                    await client.rcpt(rcpt)
                    accepted.append(rcpt)
                except aiosmtplib.SMTPRecipientRefused as exc:
                    (refused if _permanent(exc.code) else deferred)[rcpt] = f"{exc.code} {exc.message}"[:300]
            if not accepted:
                try:
                    await client.rset()  # end the transaction; the session stays usable
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    self._drop()
                return Delivery(refused=refused, deferred=deferred)
        except aiosmtplib.SMTPResponseException as exc:
            self._drop()
            raise NotSent(f"SMTP {exc.code} before DATA: {exc.message}") from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._drop()
            raise NotSent(f"SMTP unreachable before DATA: {exc!r}") from exc
        self.in_data = True
        try:
            await client.data(message)
        except aiosmtplib.SMTPResponseException as exc:  # an explicit answer: the message was not taken
            reason = f"{exc.code} {exc.message}"[:300]
            if exc.code == 421:
                self._drop()
            if _permanent(exc.code):
                refused.update(dict.fromkeys(accepted, reason))
            else:
                deferred.update(dict.fromkeys(accepted, reason))
            return Delivery(refused=refused, deferred=deferred)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._drop()
            raise OutcomeUnknown(f"DATA exchange broke off: {exc!r}") from exc
        return Delivery(accepted=tuple(accepted), refused=refused, deferred=deferred)
