"""Settings: secrets have defaults only in dev/test; placeholders are refused in production."""

import pytest
from pydantic import ValidationError

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
