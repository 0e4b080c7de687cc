"""Settings fragments every service shares, read from the environment.

Each service subclasses :class:`ServiceSettings` and adds its own fields.
Tests build ``Settings(...)`` directly; nothing here reads the environment at
import time.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.events import event_source

# Values that are never acceptable as a secret outside development.
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "dev", "dev-secret"}


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class KafkaSecurityProtocol(StrEnum):
    PLAINTEXT = "PLAINTEXT"
    SSL = "SSL"
    SASL_PLAINTEXT = "SASL_PLAINTEXT"
    SASL_SSL = "SASL_SSL"


class KafkaSaslMechanism(StrEnum):
    PLAIN = "PLAIN"
    SCRAM_SHA_256 = "SCRAM-SHA-256"
    SCRAM_SHA_512 = "SCRAM-SHA-512"


class ServiceSettings(BaseSettings):
    """Settings every service reads. Field names are the environment variables.

    Fragments a service includes as it needs them: ``shared.mail.settings.MailSettings``
    (the ``SMTP_*`` relay and the mail queue), ``shared.privacy.PrivacySettings``,
    ``shared.signing.SigningSettings``."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    keymoment_env: Environment = Field(
        Environment.PRODUCTION,
        description="dev, test or production. Only dev and test accept built-in secrets.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP server binds to.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the service.")
    log_level: str = Field("INFO", description="Python log level.")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092", description="Comma-separated Kafka bootstrap servers."
    )
    kafka_topic_prefix: str = Field(
        "", description="Prefix for every topic name (isolates tenants and test runs)."
    )
    kafka_topic_partitions: int = Field(3, ge=1, description="Partitions for topics created at start.")
    kafka_replication_factor: int = Field(1, ge=1, description="Replication factor for topics created at start.")
    kafka_session_timeout_ms: int = Field(
        10_000, ge=1_000, description="Consumer group session timeout; a dead member's partitions move after it."
    )
    kafka_fetch_max_wait_ms: int = Field(
        50, ge=1, le=5_000,
        description="Longest the broker holds a fetch open waiting for data: an upper bound on the delay an idle "
        "consumer adds to each event (aiokafka's 500 ms default would use up the alert latency budget).",
    )
    kafka_consumer_group: str | None = Field(
        None, description="Consumer group; defaults to the service name."
    )
    kafka_security_protocol: KafkaSecurityProtocol = Field(
        KafkaSecurityProtocol.PLAINTEXT,
        description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (TLS + SASL, e.g. Strimzi's SCRAM listener).",
    )
    kafka_sasl_mechanism: KafkaSaslMechanism = Field(
        KafkaSaslMechanism.SCRAM_SHA_512, description="SASL mechanism with SASL_*: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user (required with SASL_*).")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password (required with SASL_*).")
    kafka_ssl_cafile: Path | None = Field(
        None, description="PEM file of the CA that signed the brokers' certificates (SSL/SASL_SSL); unset: the "
        "system's trusted CAs.",
    )

    database_url: SecretStr | None = Field(
        None, description="PostgreSQL DSN, e.g. postgresql://user:pass@host:5432/keymoment."
    )
    database_schema: str | None = Field(
        None, description="Schema the service owns; defaults to the service name."
    )
    processed_events_retention_days: int = Field(
        14, ge=1, description="How long consumed event ids are kept for dedupe; keep above Kafka's retention."
    )
    database_pool_min: int = Field(2, ge=1, description="Connections the pool keeps open.")
    database_pool_max: int = Field(10, ge=1, description="Most connections the pool opens.")

    admin_token: SecretStr | None = Field(
        None, description="Bearer token for the management APIs (required outside dev/test)."
    )
    migrate_on_start: bool = Field(
        True, description="Apply the database migrations at start-up (under an advisory lock). Off when a separate "
        "step runs `keymoment migrate SERVICE` first (the Kubernetes Job): the service then waits for its schema "
        "to be current instead.",
    )

    # The service name; subclasses fix it.
    service_name: ClassVar[str] = "keymoment"

    @classmethod
    def migration_components(cls) -> list[tuple[str, Path]]:
        """The shared tables (``(component, migrations directory)``) that the settings fragments
        this class includes bring, e.g. ``MailSettings``: the mail queue. Read from the class, so
        the migration step (``keymoment migrate``) and the service agree without building the app."""
        found: list[tuple[str, Path]] = []
        for base in reversed(cls.__mro__):
            component = base.__dict__.get("migration_component")
            if component is not None and component not in found:
                found.append(component)
        return found

    @property
    def is_dev(self) -> bool:
        return self.keymoment_env in (Environment.DEV, Environment.TEST)

    @property
    def consumer_group(self) -> str:
        return self.kafka_consumer_group or self.service_name

    @property
    def schema(self) -> str:
        return self.database_schema or self.service_name

    @property
    def event_source(self) -> str:
        """The CloudEvents ``source`` of this service's events (``/keymoment/<service>``)."""
        return event_source(self.service_name)

    def topic(self, name: str) -> str:
        """The physical topic name of a logical topic such as ``feedback.received.v1``."""
        return f"{self.kafka_topic_prefix}{name}"

    def dsn(self) -> str:
        assert self.database_url is not None  # guaranteed by the validator
        return self.database_url.get_secret_value()

    # Secrets that must be set (and not be placeholders) outside dev/test.
    # Subclasses extend this tuple with their own secret fields.
    required_secrets: ClassVar[tuple[str, ...]] = ("database_url", "admin_token")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        "database_url": "postgresql://postgres@127.0.0.1:5432/keymoment",
        "admin_token": "dev-admin-token",
    }

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        for name in self.required_secrets:
            value = getattr(self, name)
            raw = value.get_secret_value() if isinstance(value, SecretStr) else value
            if raw:
                if not self.is_dev and raw.strip().lower() in _PLACEHOLDERS:
                    raise ValueError(f"{name.upper()} is a placeholder; set a real secret")
                continue
            if self.is_dev and name in self.dev_secret_defaults:
                object.__setattr__(self, name, SecretStr(self.dev_secret_defaults[name]))
            else:
                raise ValueError(
                    f"{name.upper()} must be set when KEYMOMENT_ENV={self.keymoment_env.value}"
                )
        if self.database_pool_min > self.database_pool_max:
            raise ValueError("DATABASE_POOL_MIN must not exceed DATABASE_POOL_MAX")
        return self

    @model_validator(mode="after")
    def _kafka_login(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL_"):
            password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else ""
            if not self.kafka_sasl_username or not password:
                raise ValueError(
                    f"KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set with "
                    f"KAFKA_SECURITY_PROTOCOL={self.kafka_security_protocol.value}"
                )
        if self.kafka_ssl_cafile is not None and not self.kafka_security_protocol.endswith("SSL"):
            raise ValueError("KAFKA_SSL_CAFILE is only used with KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL")
        return self
