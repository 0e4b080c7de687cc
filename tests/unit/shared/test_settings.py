"""Settings: secrets have defaults only in dev/test; placeholders are refused in production."""

import pytest
from pydantic import SecretStr, ValidationError

from shared.mail.settings import MailSettings
from shared.settings import ServiceSettings


def test_dev_fills_in_dev_secrets():
    s = ServiceSettings(keymoment_env="dev")
    assert s.admin_token.get_secret_value() == "dev-admin-token"
    assert s.dsn().startswith("postgresql://")


def test_production_requires_secrets():
    with pytest.raises(ValidationError, match="DATABASE_URL must be set when KEYMOMENT_ENV=production"):
        ServiceSettings(keymoment_env="production", admin_token="a-real-token-value")


def test_production_refuses_placeholders():
    with pytest.raises(ValidationError, match="ADMIN_TOKEN is a placeholder"):
        ServiceSettings(keymoment_env="production", database_url="postgresql://db/x", admin_token="changeme")


def test_reads_environment_variables(monkeypatch):
    monkeypatch.setenv("KEYMOMENT_ENV", "dev")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka:9092")
    monkeypatch.setenv("DATABASE_POOL_MAX", "7")  # was SMTP_PORT: the SMTP_* settings left ServiceSettings
    s = ServiceSettings()
    assert (s.kafka_bootstrap_servers, s.database_pool_max) == ("kafka:9092", 7)


def test_topic_prefix_and_defaults():
    s = ServiceSettings(keymoment_env="test", kafka_topic_prefix="acme.")
    assert s.topic("feedback.received.v1") == "acme.feedback.received.v1"
    assert s.consumer_group == s.schema == "keymoment"


STRONG = "9c1e5b0f7a2d4e8c6b3a1f0e9d8c7b6a"


@pytest.mark.parametrize("token", [
    "dev-admin-token",                                  # a built-in value
    "dev-" + STRONG,                                    # anything starting with the dev prefix
    "  Dev-Admin-Token ",                               # spelt differently
    STRONG[:31],                                        # short
    "abababababababababababababababababab",             # long, but two characters
    "changeme",
])
def test_production_refuses_dev_short_and_low_variety_secrets(token):
    with pytest.raises(ValidationError, match="ADMIN_TOKEN (is a placeholder|is a built-in development value|is too weak)"):
        ServiceSettings(keymoment_env="production", database_url="postgresql://u:p@db/x", admin_token=token)


def test_production_accepts_random_secrets_and_dev_keeps_its_defaults():
    s = ServiceSettings(keymoment_env="production", database_url="postgresql://u:p@db/x", admin_token=STRONG,
                        metrics_token=STRONG[::-1])
    assert s.metrics_token.get_secret_value() == STRONG[::-1]
    ServiceSettings(keymoment_env="test", admin_token="short")  # dev/test take anything


def test_an_optional_secret_is_checked_when_set_and_a_dev_dsn_is_refused():
    with pytest.raises(ValidationError, match="METRICS_TOKEN is too weak"):
        ServiceSettings(keymoment_env="production", database_url="postgresql://u:p@db/x", admin_token=STRONG,
                        metrics_token="prometheus")
    with pytest.raises(ValidationError, match="DATABASE_URL is a built-in development value"):
        ServiceSettings(keymoment_env="production", database_url=ServiceSettings.dev_secret_defaults["database_url"],
                        admin_token=STRONG)
    # a DSN is not a key: no length rule
    ServiceSettings(keymoment_env="production", database_url="postgresql://db/x", admin_token=STRONG)


def test_every_built_in_secret_of_every_service_is_refused_by_every_service_in_production():
    from keymoment.settings_doc import settings_classes

    classes = settings_classes()
    dev_values = {v for cls in classes.values() for v in cls.dev_secret_defaults.values()}
    keys = {v for v in dev_values if "://" not in v}
    assert keys and all(v.startswith("dev-") for v in keys), "built-in keys and tokens start with dev- (refused by prefix)"
    for name, cls in classes.items():
        strong = {field: STRONG for field in cls.required_secrets if field != "database_url"}
        cls(keymoment_env="production", database_url="postgresql://u:p@db/x", **strong)  # the baseline starts
        for field in strong:
            for value in keys:
                with pytest.raises(ValidationError, match=f"{field.upper()} is a built-in development value"):
                    cls(keymoment_env="production", database_url="postgresql://u:p@db/x", **{**strong, field: value})


def test_reporting_requires_a_metrics_token_in_production_only():
    from services.reporting.settings import ReportingSettings

    with pytest.raises(ValidationError, match="METRICS_TOKEN must be set"):
        ReportingSettings(keymoment_env="production", database_url="postgresql://u:p@db/x", admin_token=STRONG)
    assert ReportingSettings(keymoment_env="dev").metrics_token is None  # /metrics stays open in dev/test


class _Rotating(ServiceSettings):
    demo_signing_old_keys: SecretStr | None = None


class _Mailing(ServiceSettings, MailSettings):
    pass


def test_every_secret_field_is_checked_each_listed_key_too_and_external_credentials_only_for_placeholders():
    base = {"keymoment_env": "production", "database_url": "postgresql://u:p@db/x", "admin_token": STRONG}
    _Rotating(**base, demo_signing_old_keys=f"{STRONG}, {STRONG[::-1]}")
    with pytest.raises(ValidationError, match="DEMO_SIGNING_OLD_KEYS is too weak"):
        _Rotating(**base, demo_signing_old_keys=f"{STRONG},short")
    _Mailing(**base, smtp_password="relay-pw-16chars")  # chosen by the relay's operator
    with pytest.raises(ValidationError, match="SMTP_PASSWORD is a placeholder"):
        _Mailing(**base, smtp_password="changeme")
