"""Settings of the alerts service. Field names are the environment variables."""

from pathlib import Path
from typing import ClassVar

from pydantic import Field, SecretStr

from services.alerts.links import ALERT_LINK, MANAGER_TOKEN
from shared.mail.settings import MailSettings
from shared.privacy import PrivacySettings
from shared.settings import ServiceSettings
from shared.signing import Signer, SigningSettings

EXAMPLE_ROUTES_FILE = Path(__file__).parent / "routes.example.yaml"


class AlertsSettings(ServiceSettings, MailSettings, PrivacySettings, SigningSettings):
    """Alerts' own settings; notifications go through the shared mail queue (``MAIL_*``, ``SMTP_*``),
    links and manager tokens are signed with a key per purpose (``shared.signing``)."""

    service_name: ClassVar[str] = "alerts"
    port: int = Field(8003, ge=1, le=65535, description="HTTP port of alerts.")

    alerts_routes_file: Path | None = Field(
        None,
        description="Routing rules (YAML). Defaults to the shipped routes.example.yaml in dev/test; required in production.",
    )
    alerts_link_signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of the action links in alert mails; unset: LINK_SIGNING_KEY. When it takes "
        "over from LINK_SIGNING_KEY, list that value in ALERTS_LINK_SIGNING_OLD_KEYS until the links mailed before "
        "have expired (ALERTS_LINK_TTL_SECONDS).",
    )
    alerts_link_signing_old_keys: SecretStr | None = Field(
        None, description="Comma-separated retired keys that still verify alert mail links (rotation).",
    )
    alerts_manager_token_signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key of manager API tokens; unset: LINK_SIGNING_KEY. When it takes over from "
        "LINK_SIGNING_KEY, list that value in ALERTS_MANAGER_TOKEN_SIGNING_OLD_KEYS until the tokens issued before "
        "have expired or been re-issued.",
    )
    alerts_manager_token_signing_old_keys: SecretStr | None = Field(
        None, description="Comma-separated retired keys that still verify manager tokens (rotation).",
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8003", description="Alerts' own public URL; signed links in emails point here."
    )
    alerts_link_ttl_seconds: int = Field(7 * 86_400, ge=60, description="How long a signed email link stays valid.")
    alerts_manager_token_ttl_days: int = Field(90, ge=1, le=3650, description="Default lifetime of a manager token.")
    alerts_silence_max_days: int = Field(
        7, ge=1, le=365, description="Longest a silence may mute (from its start, or from now if it started before)."
    )

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
    alerts_history_days: int = Field(90, ge=1, description="How far back a customer's contact history goes "
                                     "(older moments are deleted).")
    alerts_personal_data_days: int = Field(
        180, ge=1,
        description="Days after which an alert's customer details and words are cleared: the customer's contacts "
        "and the summary (after the alert's last change), feedback texts and cues (after they joined), managers' "
        "notes and notification subjects (after they were written); notification mails follow MAIL_CONTENT_DAYS. "
        "The alerts stay, with their times and states, for the KPIs.",
    )
    alerts_scheduler_enabled: bool = Field(True, description="Run the SLA scheduler in this process.")

    required_secrets: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.required_secrets, "link_signing_key", "privacy_hash_key")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        **ServiceSettings.dev_secret_defaults,
        **PrivacySettings.privacy_dev_defaults,
        "link_signing_key": "dev-link-signing-key-not-for-production",
    }

    def signer(self) -> Signer:
        """Alert links and manager tokens each with their own keyring (``LINK_SIGNING_KEY``'s
        when they have no key of their own)."""
        return Signer(self.keyring(), per_purpose={
            ALERT_LINK.name: self.keyring(self.alerts_link_signing_key, self.alerts_link_signing_old_keys,
                                          name="ALERTS_LINK_SIGNING_KEY"),
            MANAGER_TOKEN.name: self.keyring(self.alerts_manager_token_signing_key,
                                             self.alerts_manager_token_signing_old_keys,
                                             name="ALERTS_MANAGER_TOKEN_SIGNING_KEY"),
        })

    def sla_seconds(self) -> dict[int, int]:
        return {-3: self.alerts_sla_minus3_seconds, -2: self.alerts_sla_minus2_seconds, -1: self.alerts_sla_minus1_seconds}

    def routes_path(self) -> Path:
        if self.alerts_routes_file is not None:
            return self.alerts_routes_file
        if self.is_dev:
            return EXAMPLE_ROUTES_FILE
        raise ValueError("ALERTS_ROUTES_FILE must be set when KEYMOMENT_ENV=production")
