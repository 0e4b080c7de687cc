"""Survey's settings; field names are the environment variables."""

from typing import ClassVar

from pydantic import Field, field_validator

from shared.mail.settings import MailSettings
from shared.privacy import PrivacySettings
from shared.settings import ServiceSettings
from shared.signing import SigningSettings


class SurveySettings(ServiceSettings, MailSettings, PrivacySettings, SigningSettings):
    """Survey's own settings; invitations are sent through the shared mail queue (``MAIL_*``),
    personal survey links signed with ``LINK_SIGNING_KEY`` (retired keys in
    ``LINK_SIGNING_OLD_KEYS`` still verify: ``shared.signing.SigningSettings``)."""

    service_name: ClassVar[str] = "survey"
    port: int = Field(8002, ge=1, le=65535, description="HTTP port of survey.")

    survey_public_base_url: str = Field(
        "http://127.0.0.1:8002",
        description="Public URL of this service as customers reach it; survey links start with it.",
    )
    survey_link_ttl_days: int = Field(30, ge=1, le=365, description="How long a personal survey link stays valid.")

    required_secrets: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.required_secrets, "link_signing_key", "privacy_hash_key")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        **ServiceSettings.dev_secret_defaults,
        **PrivacySettings.privacy_dev_defaults,
        "link_signing_key": "dev-survey-link-signing-key",
    }

    @field_validator("survey_public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("SURVEY_PUBLIC_BASE_URL must start with http:// or https://")
        return value
