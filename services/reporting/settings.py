from typing import ClassVar

from pydantic import Field

from shared.privacy import PrivacySettings
from shared.settings import ServiceSettings


class ReportingSettings(ServiceSettings, PrivacySettings):
    service_name: ClassVar[str] = "reporting"
    # METRICS_TOKEN: its /metrics serves the cx_* KPIs that GET /v1/kpis guards: a scrape token is
    # required outside dev/test (no built-in value: in dev/test /metrics stays open).
    # PRIVACY_HASH_KEY: the erasure API pseudonymises the contacts it is given (services/reporting/erasures.py).
    required_secrets: ClassVar[tuple[str, ...]] = (
        *ServiceSettings.required_secrets, "metrics_token", "privacy_hash_key")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        **ServiceSettings.dev_secret_defaults, **PrivacySettings.privacy_dev_defaults}
    port: int = Field(8004, ge=1, le=65535, description="HTTP port of reporting.")
    reporting_max_locations: int = Field(
        200, ge=0, le=5000,
        description="Locations that get a label of their own in cx_* series (first come, kept for ever); "
                    "later ones are counted under location=\"other\".",
    )
    reporting_max_touchpoints: int = Field(
        50, ge=0, le=1000,
        description="Touchpoints that get a label of their own in cx_* series; later ones count as \"other\".",
    )
    reporting_max_surveys: int = Field(
        100, ge=0, le=5000,
        description="Surveys that get a label of their own in the cx_survey_* series (first come, kept for ever); "
                    "later ones count as \"other\".",
    )
    reporting_max_teams: int = Field(
        100, ge=0, le=5000,
        description="Teams that get a label of their own in the cx_recovery_* series; later ones count as \"other\".",
    )
    reporting_refresh_seconds: float = Field(
        0.5, gt=0, le=60,
        description="How often the cx_* series are re-read from PostgreSQL (the /metrics answer is served "
                    "from this snapshot, so a scrape never waits for the database).",
    )
    reporting_kpi_max_days: int = Field(
        400, ge=1, description="Longest period one GET /v1/kpis request may cover."
    )
