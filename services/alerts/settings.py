"""Settings of the alerts service. Field names are the environment variables."""

from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator

from shared.privacy import PrivacySettings
from shared.settings import ServiceSettings

EXAMPLE_ROUTES_FILE = Path(__file__).parent / "routes.example.yaml"


class AlertsSettings(ServiceSettings, PrivacySettings):
    service_name: ClassVar[str] = "alerts"
    port: int = Field(8003, ge=1, le=65535, description="HTTP port of alerts.")

    alerts_routes_file: Path | None = Field(
        None,
        description="Routing rules (YAML). Defaults to the shipped routes.example.yaml in dev/test; required in production.",
    )
    link_signing_key: SecretStr | None = Field(
        None, description="HMAC-SHA256 key for signed email links and manager tokens (required outside dev/test)."
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8003", description="Alerts' own public URL; signed links in emails point here."
    )
    alerts_link_ttl_seconds: int = Field(7 * 86_400, ge=60, description="How long a signed email link stays valid.")
    alerts_manager_token_ttl_days: int = Field(90, ge=1, le=3650, description="Default lifetime of a manager token.")

    alerts_group_window_seconds: int = Field(
        1800, ge=0, description="Negative feedback at the same location+touchpoint within this window joins the open alert (0: off)."
    )
    alerts_update_min_interval_seconds: int = Field(
        900, ge=0, description="At most one 'alert updated' email per alert in this interval (a worse severity mails at once)."
    )
    alerts_sla_minus3_seconds: int = Field(900, ge=1, description="Time to acknowledge a -3 alert before escalation.")
    alerts_sla_minus2_seconds: int = Field(3600, ge=1, description="Time to acknowledge a -2 alert before escalation.")
    alerts_sla_minus1_seconds: int = Field(14_400, ge=1, description="Time to acknowledge a -1 alert before escalation.")

    scoring_model_path: Path | None = Field(
        None, description="Scoring model file written by `keymoment scoring train`, loaded at start (default: the shipped model)."
    )

    alerts_consumer_max_records: int = Field(
        500, ge=1, le=5000,
        description="Feedback events per consumer transaction: smaller commits each alert sooner, larger costs less per event.",
    )
    alerts_scheduler_interval_seconds: float = Field(5.0, gt=0, description="How often SLA timers are checked.")
    alerts_smtp_concurrency: int = Field(4, ge=1, le=64, description="Parallel SMTP sessions of the notification sender.")
    alerts_smtp_timeout_seconds: float = Field(30.0, gt=0, description="Timeout of one SMTP exchange.")
    alerts_smtp_max_attempts: int = Field(12, ge=1, description="SMTP attempts before a notification is marked failed.")
    alerts_smtp_max_backoff_seconds: float = Field(600.0, gt=0, description="Cap of the exponential retry backoff.")
    alerts_sending_lease_seconds: int = Field(
        120, ge=10, description="A notification left 'sending' longer than this (its process died mid-send) is marked "
        "uncertain by the sender's periodic check; must exceed ALERTS_SMTP_TIMEOUT_SECONDS."
    )
    alerts_resend_uncertain: bool = Field(
        False,
        description="Resend a notification whose SMTP outcome is unknown after a crash (same Message-ID). "
        "Off: never send twice; the SLA escalation is the safety net.",
    )
    alerts_history_days: int = Field(90, ge=1, description="How far back a customer's contact history goes.")
    alerts_mail_sender_enabled: bool = Field(True, description="Run the notification sender in this process.")
    alerts_scheduler_enabled: bool = Field(True, description="Run the SLA scheduler in this process.")

    required_secrets: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.required_secrets, "link_signing_key", "privacy_hash_key")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        **ServiceSettings.dev_secret_defaults,
        **PrivacySettings.privacy_dev_defaults,
        "link_signing_key": "dev-link-signing-key-not-for-production",
    }

    @model_validator(mode="after")
    def _lease_outlasts_a_send(self) -> Self:
        if self.alerts_sending_lease_seconds <= self.alerts_smtp_timeout_seconds:
            raise ValueError("ALERTS_SENDING_LEASE_SECONDS must exceed ALERTS_SMTP_TIMEOUT_SECONDS "
                             "(else a slow but live send would be taken for a crash)")
        return self

    def sla_seconds(self) -> dict[int, int]:
        return {-3: self.alerts_sla_minus3_seconds, -2: self.alerts_sla_minus2_seconds, -1: self.alerts_sla_minus1_seconds}

    def routes_path(self) -> Path:
        if self.alerts_routes_file is not None:
            return self.alerts_routes_file
        if self.is_dev:
            return EXAMPLE_ROUTES_FILE
        raise ValueError("ALERTS_ROUTES_FILE must be set when KEYMOMENT_ENV=production")
