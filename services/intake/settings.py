import secrets
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator

from shared.privacy import PrivacySettings
from shared.settings import ServiceSettings


class IntakeSettings(ServiceSettings, PrivacySettings):
    service_name: ClassVar[str] = "intake"
    # Intake has no management API (keys are managed with `keymoment keys`): no admin token.
    required_secrets: ClassVar[tuple[str, ...]] = ("database_url", "privacy_hash_key")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        **ServiceSettings.dev_secret_defaults, **PrivacySettings.privacy_dev_defaults}
    port: int = Field(8001, ge=1, le=65535, description="HTTP port of intake.")

    intake_dev_api_key: SecretStr | None = Field(
        None,
        description="Dev/test only: an API key (km_dev_...) upserted at start with all channels, any origin, "
        "no rate limit. A random one is made when unset. Ignored in production.",
    )
    intake_max_body_bytes: int = Field(65_536, ge=1024, description="Largest single feedback body (413 above).")
    intake_max_batch_bytes: int = Field(8 * 1024 * 1024, ge=65_536, description="Largest batch body (413 above).")
    intake_max_batch_items: int = Field(1000, ge=1, description="Most feedback items in one batch.")
    intake_publish_timeout_seconds: float = Field(
        2.0, gt=0, le=30,
        description="Longest a request waits for a Kafka acknowledgement before the feedback goes to the outbox.",
    )
    intake_key_cache_ttl_seconds: float = Field(
        30.0, gt=0, description="API keys are reloaded at least this often (changes also arrive via NOTIFY)."
    )

    # Email channel (services/intake/email): SMTP listener and POST /v1/email.
    intake_smtp_host: str = Field("127.0.0.1", description="Address the feedback SMTP listener binds to.")
    intake_smtp_port: int | None = Field(
        None, ge=0, le=65535, description="Port of the feedback SMTP listener (dev: 2525); unset or 0 turns it off."
    )
    intake_email_addresses: str = Field(
        "", description="Comma-separated mailboxes the listener accepts (others get 550), e.g. feedback@example.com. "
        "Dev/test default: feedback@example.com,feedback@localhost.",
    )
    intake_email_max_bytes: int = Field(
        10 * 1024 * 1024, ge=65_536, description="Largest mail accepted (SMTP answers 552 above, HTTP 413)."
    )
    intake_email_record_days: int = Field(
        90, ge=1, description="Days a received mail's record (Message-ID, outcome, feedback id; never its content) "
        "is kept: the window in which a re-delivery is recognised as a duplicate, and the audit trail.",
    )
    intake_email_parse_workers: int = Field(
        1, ge=1, le=16, description="Processes that parse mail (off the event loop, one message each at a time).",
    )
    intake_email_parse_timeout_seconds: float = Field(
        10.0, gt=0, le=300, description="Longest one mail may take to parse; a mail over it is refused for good "
        "(SMTP 554, HTTP 422) and its parser process replaced.",
    )
    intake_smtp_max_connections: int = Field(
        100, ge=1, description="SMTP connections served at once; more are answered 421 and closed.",
    )
    intake_smtp_max_connections_per_peer: int = Field(
        10, ge=1, description="SMTP connections at once from one client address (trusted relays exempt); more are "
        "answered 421 and closed.",
    )
    intake_smtp_messages_per_minute_per_peer: int = Field(
        60, ge=1, description="Messages one client address may start per minute (token bucket; trusted relays "
        "exempt); beyond it MAIL FROM is answered 451 4.7.1.",
    )
    intake_smtp_trusted_relays: str = Field(
        "", description="Comma-separated addresses or networks (CIDR) of the mail servers that forward the feedback "
        "mailbox, e.g. 10.0.0.0/8. When set, only they may deliver (others get 554 5.7.1) and they are exempt from "
        "the per-peer limits. Unset: any client, within the per-peer limits.",
    )

    @property
    def email_addresses(self) -> set[str]:
        configured = {a.strip().lower() for a in self.intake_email_addresses.split(",") if a.strip()}
        if not configured and self.is_dev:
            return {"feedback@example.com", "feedback@localhost"}
        return configured

    @model_validator(mode="after")
    def _relays_are_networks(self) -> Self:
        from services.intake.email.smtp import parse_networks

        try:
            parse_networks(self.intake_smtp_trusted_relays)
        except ValueError as exc:
            raise ValueError(f"INTAKE_SMTP_TRUSTED_RELAYS: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _mailboxes_for_listener(self) -> Self:
        if self.intake_smtp_port and not self.email_addresses:
            raise ValueError("INTAKE_EMAIL_ADDRESSES must name the feedback mailboxes when INTAKE_SMTP_PORT is set")
        return self

    @model_validator(mode="after")
    def _dev_key(self) -> Self:
        if self.is_dev and self.intake_dev_api_key is None:
            object.__setattr__(self, "intake_dev_api_key", SecretStr(f"km_dev_{secrets.token_urlsafe(24)}"))
        return self

    @property
    def dev_api_key(self) -> SecretStr | None:
        """The dev key in effect (dev/test only)."""
        return self.intake_dev_api_key if self.is_dev else None
