"""The one set of mail settings: the SMTP relay (``SMTP_*``) and the queue's ``MAIL_*``.

A service that sends mail includes :class:`MailSettings` in its settings class
(``class SurveySettings(ServiceSettings, MailSettings)``). Field names are the
environment variables; nothing is read at import time.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# The same configuration as ServiceSettings': a mixin's own config would override it.
_CONFIG = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True)


class SmtpRelaySettings(BaseSettings):
    """The relay outgoing mail goes through (part of :class:`MailSettings`: only the
    services that send mail have these)."""

    model_config = _CONFIG

    smtp_host: str = Field("127.0.0.1", description="SMTP relay host for outgoing mail.")
    smtp_port: int = Field(1025, ge=1, le=65535, description="SMTP relay port.")
    smtp_username: str | None = Field(None, description="SMTP user, if the relay needs login.")
    smtp_password: SecretStr | None = Field(None, description="SMTP password.")
    smtp_starttls: bool = Field(False, description="Use STARTTLS with the relay.")
    smtp_from: str = Field("Keymoment <keymoment@localhost>", description="From address of outgoing mail.")


class UncertainPolicy(StrEnum):
    """What becomes of a mail whose SMTP outcome is unknown."""

    RESEND = "resend"  # send it again: same bytes, same Message-ID, so servers and clients collapse a copy
    HOLD = "hold"  # leave it 'uncertain' for a person (shared.mail.queue.requeue); never sent twice


MAIL_COMPONENT = ("mail", Path(__file__).parent / "migrations")


class MailSettings(SmtpRelaySettings):
    """The shared mail queue's settings (``shared/mail``). A service whose settings include
    this fragment gets the ``mail_queue`` table: migration component ``mail``."""

    model_config = _CONFIG
    migration_component: ClassVar[tuple[str, Path]] = MAIL_COMPONENT

    mail_sender_enabled: bool = Field(
        True, description="Run the mail sender in this process (mail is queued either way; another replica sends it)."
    )
    mail_concurrency: int = Field(
        4, ge=1, le=64, description="SMTP sessions the sender keeps open and sends over in parallel (per process)."
    )
    mail_smtp_timeout_seconds: float = Field(
        30.0, gt=0, description="Timeout of one SMTP step (connect, MAIL, RCPT, the DATA reply)."
    )
    mail_retry_initial_seconds: float = Field(
        5.0, gt=0,
        description="Delay before retrying a mail after a transient failure (relay unreachable, 4xx); doubles per "
        "attempt up to MAIL_RETRY_MAX_SECONDS, ±20 % jitter. There is no attempt limit: mail stays pending through "
        "an outage of any length and is given up only for recipients the relay refuses permanently (5xx).",
    )
    mail_retry_max_seconds: float = Field(
        300.0, gt=0, description="Cap of the retry delay: once the relay is back, every mail goes out within it."
    )
    mail_lease_seconds: float = Field(
        60.0, ge=1,
        description="Lease of a claimed mail, renewed by its live sender every third of it (at most every "
        "MAIL_POLL_SECONDS). A mail still 'sending' after its lease ran out belonged to a process that died: its "
        "outcome is unknown and MAIL_UNCERTAIN_POLICY decides.",
    )
    mail_uncertain_policy: UncertainPolicy = Field(
        UncertainPolicy.RESEND,
        description="A mail whose outcome is unknown (the connection broke during DATA, or the sending process "
        "died): resend (same bytes and Message-ID, so receiving servers and mail clients collapse a copy) or hold "
        "(state 'uncertain' until a person requeues it; never sent twice).",
    )
    mail_poll_seconds: float = Field(
        5.0, gt=0, description="How often the sender looks for due mail without a wake-up (NOTIFY after enqueue)."
    )
    mail_content_days: int = Field(
        30, ge=1,
        description="Days a sent or given-up mail keeps its content (bytes, recipients, refusals, last error); "
        "then only its record stays (purpose, domain row, Message-ID, state, times). Mail not yet settled keeps "
        "everything until it is.",
    )
    mail_shutdown_grace_seconds: float = Field(
        15.0, ge=0,
        description="On shutdown, how long SMTP exchanges in flight may take to finish (a DATA exchange cut off is "
        "'uncertain'); claimed mail not yet started is given back at once. Keep it below the orchestrator's "
        "termination grace period minus the pre-stop pause.",
    )

    @model_validator(mode="after")
    def _retry_band(self) -> Self:
        if self.mail_retry_max_seconds < self.mail_retry_initial_seconds:
            raise ValueError("MAIL_RETRY_MAX_SECONDS must not be below MAIL_RETRY_INITIAL_SECONDS")
        return self
