"""How every Kafka client of a process authenticates and encrypts: the aiokafka
keyword arguments built once from the settings (``KAFKA_SECURITY_PROTOCOL``,
``KAFKA_SASL_*``, ``KAFKA_SSL_CAFILE``) and passed to each producer, consumer
and admin client, so that no client connects differently from the others.

With Strimzi the listener is ``SASL_SSL`` + ``SCRAM-SHA-512``: the password is
the ``password`` key of the Secret the User Operator creates for the service's
``KafkaUser``, the CA the ``ca.crt`` of ``<cluster>-cluster-ca-cert``.
"""

from __future__ import annotations

import ssl
from typing import Any

from shared.settings import ServiceSettings


def client_security(settings: ServiceSettings) -> dict[str, Any]:
    """aiokafka keyword arguments (``security_protocol``, ``ssl_context``, ``sasl_*``);
    empty for PLAINTEXT, so a client built with them behaves as before."""
    protocol = settings.kafka_security_protocol.value
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol.endswith("SSL"):
        # Verifies the broker's certificate and host name; the CA file, when given, replaces the system's CAs.
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if protocol.startswith("SASL_"):
        assert settings.kafka_sasl_username and settings.kafka_sasl_password  # the settings' validator
        options.update(
            sasl_mechanism=settings.kafka_sasl_mechanism.value,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    return options
