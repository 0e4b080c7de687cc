"""Survey's settings; field names are the environment variables."""

from typing import ClassVar, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

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
    survey_personal_data_days: int = Field(
        180, ge=1,
        description="Days after which a survey request's customer (name, contacts) and a response's text answers are "
        "cleared (ratings stay). At least SURVEY_LINK_TTL_DAYS: a link must find its customer while it is valid.",
    )

    # Contact rules: the system defaults; a survey's contact_rules override any of them.
    survey_max_invitations: int = Field(
        1, ge=1, le=1000, description="Contact rule default: at most this many invitations per customer within "
        "SURVEY_FREQUENCY_WINDOW_DAYS (recovery surveys bypass it).")
    survey_frequency_window_days: int = Field(
        30, ge=1, le=3650, description="Contact rule default: the window of SURVEY_MAX_INVITATIONS, in days.")
    survey_frequency_scope: Literal["all", "survey"] = Field(
        "all", description="Contact rule default: all: invitations of every survey count towards "
        "SURVEY_MAX_INVITATIONS; survey: each survey's own only.")
    survey_min_days_between: float = Field(
        1.0, ge=0, le=3650, description="Contact rule default: at least this many days between any two "
        "invitations to one customer, of any survey (recovery surveys bypass it).")
    survey_quiet_hours: str = Field(
        "21:00-08:00", pattern=r"^$|^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Contact rule default: no invitation is sent in these hours of the customer's local time "
        "(HH:MM-HH:MM; empty: none).")
    survey_quiet_hours_mode: Literal["defer", "skip"] = Field(
        "defer", description="Contact rule default: defer: an invitation falling in the quiet hours is sent when "
        "they end; skip: it is skipped (reason quiet_hours).")
    survey_default_time_zone: str = Field(
        "Asia/Shanghai", description="Contact rule default: the time zone of customers whose invitation names none.")

    # The public pages (/s/..., /u/...): limits per process.
    survey_client_requests_per_minute: int = Field(
        120, ge=1, description="Requests to the public pages one client address may make per minute (token bucket; "
        "uvicorn's FORWARDED_ALLOW_IPS decides when X-Forwarded-For names the client); 429 beyond.")
    survey_link_requests_per_minute: int = Field(
        30, ge=1, description="Requests one personal link may make per minute (token bucket); 429 beyond.")
    survey_public_submissions_per_minute: int = Field(
        1200, ge=1, description="Answers and drafts one public survey accepts per minute from all clients together "
        "(token bucket); 429 beyond.")
    survey_draft_retention_days: int = Field(
        30, ge=1, le=3650, description="How long a partial answer (a draft) is kept for its page to be reopened.")

    required_secrets: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.required_secrets, "link_signing_key", "privacy_hash_key")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        **ServiceSettings.dev_secret_defaults,
        **PrivacySettings.privacy_dev_defaults,
        "link_signing_key": "dev-survey-link-signing-key",
    }

    @model_validator(mode="after")
    def _customer_outlives_links(self) -> Self:
        if self.survey_personal_data_days < self.survey_link_ttl_days:
            raise ValueError("SURVEY_PERSONAL_DATA_DAYS must be at least SURVEY_LINK_TTL_DAYS")
        return self

    @field_validator("survey_default_time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
        return value

    @field_validator("survey_public_base_url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise ValueError("SURVEY_PUBLIC_BASE_URL must start with http:// or https://")
        return value
