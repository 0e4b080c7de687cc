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

# Outside dev/test every secret setting (a SecretStr field) that is set is refused when it is
# a placeholder or a built-in development value: any `dev_secret_defaults` value of any
# settings class, and anything starting with DEV_SECRET_PREFIX, as every built-in key and token
# does. Keys and tokens (every secret but the credentials another system chooses, which
# ServiceSettings.external_secrets lists) must also be at least SECRET_MIN_LENGTH characters
# long with at least SECRET_MIN_DISTINCT different ones; `openssl rand -hex 32` passes.
# A `*_keys` setting holds comma-separated keys, each checked. (SECURITY.md)
_PLACEHOLDERS = {"", "changeme", "change-me", "secret", "password", "dev", "dev-secret"}
DEV_SECRET_PREFIX = "dev-"
SECRET_MIN_LENGTH = 32
SECRET_MIN_DISTINCT = 10
_DEV_SECRETS: set[str] = set()  # grows with every settings class defined


def weak_secret(value: str, *, key: bool = True) -> str | None:
    """Why ``value`` may not be a secret outside dev/test (``key``: a key or token Keymoment's
    operator chooses, not a credential of another system), or None."""
    value = value.strip()
    if value.lower() in _PLACEHOLDERS:
        return "is a placeholder"
    if value in _DEV_SECRETS or value.lower().startswith(DEV_SECRET_PREFIX):
        return "is a built-in development value"
    if key and (len(value) < SECRET_MIN_LENGTH or len(set(value)) < SECRET_MIN_DISTINCT):
        return (f"is too weak: use at least {SECRET_MIN_LENGTH} characters with at least {SECRET_MIN_DISTINCT} "
                "different ones, e.g. `openssl rand -hex 32`")
    return None


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

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True)

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
        14, ge=1, description="How long consumed event ids are kept for dedupe, outbox dead letters (whole events) "
        "for a person, and erased customers' pseudonyms to drop their older events arriving late; keep above "
        "Kafka's retention."
    )
    database_pool_min: int = Field(2, ge=1, description="Connections the pool keeps open.")
    database_pool_max: int = Field(10, ge=1, description="Most connections the pool opens.")

    liveness_loop_stall_seconds: float = Field(
        10.0, gt=0, description="/healthz fails (and a watchdog logs where the loop is stuck) when the event loop "
        "has not run its heartbeat for this long; a loop blocked for good never answers, which the probe's timeout "
        "catches.",
    )

    admin_token: SecretStr | None = Field(
        None, description="Bearer token for the management APIs (required outside dev/test)."
    )
    metrics_token: SecretStr | None = Field(
        None,
        description="Bearer token Prometheus sends to scrape /metrics (`authorization` in its scrape config); "
        "when set, /metrics answers 401 without it. Required outside dev/test where /metrics serves customer "
        "KPIs (reporting's cx_* series).",
    )
    http_max_body_bytes: int = Field(
        64 * 1024, ge=1024,
        description="Largest request body on any route without a limit of its own (413 above), checked while "
        "reading, before the body is parsed or credentials are checked.",
    )
    http_max_json_depth: int = Field(
        32, ge=4, le=1000,
        description="Deepest nesting of arrays and objects in a JSON request body (422 deeper), checked before "
        "the body is parsed.",
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

    # Secrets that must be set outside dev/test (in dev/test they take their built-in value
    # from dev_secret_defaults, or stay unset without one). Subclasses extend the tuple.
    required_secrets: ClassVar[tuple[str, ...]] = ("database_url", "admin_token")
    dev_secret_defaults: ClassVar[dict[str, str]] = {
        "database_url": "postgresql://postgres@127.0.0.1:5432/keymoment",
        "admin_token": "dev-admin-token",
    }
    # Secrets another system chooses (PostgreSQL, the SMTP relay, Kafka): no length rule.
    external_secrets: ClassVar[tuple[str, ...]] = ("database_url", "smtp_password", "kafka_sasl_password")

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: object) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        _DEV_SECRETS.update(cls.dev_secret_defaults.values())

    @classmethod
    def secret_fields(cls) -> list[str]:
        """Every secret setting of this class (its SecretStr fields)."""
        return [name for name, info in cls.model_fields.items() if "SecretStr" in str(info.annotation)]

    @model_validator(mode="after")
    def _secrets(self) -> Self:
        for name in self.required_secrets:
            value = getattr(self, name)
            if value is not None and value.get_secret_value():
                continue
            if not self.is_dev:
                raise ValueError(f"{name.upper()} must be set when KEYMOMENT_ENV={self.keymoment_env.value}")
            if name in self.dev_secret_defaults:
                object.__setattr__(self, name, SecretStr(self.dev_secret_defaults[name]))
        if not self.is_dev:
            for name in self.secret_fields():
                value = getattr(self, name)
                raw = value.get_secret_value() if value is not None else ""
                values = [v for v in raw.split(",") if v.strip()] if name.endswith("_keys") else [raw]
                for one in values if raw.strip() else []:
                    if problem := weak_secret(one, key=name not in self.external_secrets):
                        raise ValueError(f"{name.upper()} {problem}; set a real secret")
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


_DEV_SECRETS.update(ServiceSettings.dev_secret_defaults.values())
