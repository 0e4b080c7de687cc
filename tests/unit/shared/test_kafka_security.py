"""Kafka TLS + SASL: the settings are checked, and the options reach every aiokafka
client the plumbing builds (the publisher's producer, the admin client that creates
topics, the consumer runner's admin and consumer); a TLS handshake really happens
with the configured CA file, and fails with another CA."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import aiokafka
import pytest
from pydantic import ValidationError

import shared.kafka as kafka
from shared.events import FEEDBACK_RECEIVED
from shared.kafka import ConsumerRunner, Publisher, ensure_topics
from shared.kafka_security import client_security
from shared.runtime import ServiceRuntime
from shared.settings import ServiceSettings

SASL = {
    "keymoment_env": "test",
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "alerts",
    "kafka_sasl_password": "s3cret-scram-password",
}


def client_options(client) -> dict:
    """What an aiokafka connection will use, read from the client aiokafka built."""
    inner = getattr(client, "_client", None) or client.client
    return {
        "security_protocol": inner._security_protocol,
        "ssl_context": inner._ssl_context,
        "sasl_mechanism": inner._sasl_mechanism,
        "sasl_plain_username": inner._sasl_plain_username,
        "sasl_plain_password": inner._sasl_plain_password,
    }


def expected(settings: ServiceSettings) -> dict:
    return {
        "security_protocol": settings.kafka_security_protocol.value,
        "sasl_mechanism": settings.kafka_sasl_mechanism.value,
        "sasl_plain_username": settings.kafka_sasl_username,
        "sasl_plain_password": settings.kafka_sasl_password.get_secret_value(),
    }


def test_sasl_needs_a_user_and_a_password():
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set"):
        ServiceSettings(**{**SASL, "kafka_sasl_password": None})
    with pytest.raises(ValidationError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD must be set"):
        ServiceSettings(**{**SASL, "kafka_sasl_username": ""})


def test_a_ca_file_without_tls_is_a_mistake(tmp_path):
    with pytest.raises(ValidationError, match="KAFKA_SSL_CAFILE is only used with"):
        ServiceSettings(keymoment_env="test", kafka_ssl_cafile=tmp_path / "ca.crt")


def test_plaintext_adds_nothing():
    assert client_security(ServiceSettings(keymoment_env="test")) == {}


def test_sasl_ssl_options():
    options = client_security(ServiceSettings(**SASL))
    assert {k: v for k, v in options.items() if k != "ssl_context"} == expected(ServiceSettings(**SASL))
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname


def test_sasl_plaintext_has_no_tls():
    settings = ServiceSettings(**{**SASL, "kafka_security_protocol": "SASL_PLAINTEXT"})
    assert "ssl_context" not in client_security(settings)


async def test_every_client_the_plumbing_builds_gets_the_options(monkeypatch):
    settings = ServiceSettings(**SASL)
    built: dict[str, object] = {}

    class Admin(aiokafka.admin.AIOKafkaAdminClient):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            built.setdefault("admin", self)

        async def start(self):
            raise OSError("no broker in this test")

    class Consumer(aiokafka.AIOKafkaConsumer):
        def __init__(self, *topics, **kwargs):
            super().__init__(*topics, **kwargs)
            built["consumer"] = self

        async def start(self):
            raise OSError("no broker in this test")

    async def no_topics(*args, **kwargs):
        built["runner_topics_security"] = kwargs.get("security")
        return []

    runtime = ServiceRuntime(settings, migrations=Path("."))
    producer = runtime.publisher._new_producer()
    try:
        options = client_options(producer)
        assert options["ssl_context"] is runtime.kafka_security["ssl_context"]
        assert {k: v for k, v in options.items() if k != "ssl_context"} == expected(settings)
    finally:
        await producer.stop()

    monkeypatch.setattr(kafka, "AIOKafkaAdminClient", Admin)
    with pytest.raises(OSError):
        await ensure_topics("127.0.0.1:1", ["t"], security=runtime.kafka_security)
    assert {k: v for k, v in client_options(built["admin"]).items() if k != "ssl_context"} == expected(settings)
    assert client_options(built["admin"])["ssl_context"] is runtime.kafka_security["ssl_context"]
    await built["admin"].close()

    monkeypatch.setattr(kafka, "AIOKafkaConsumer", Consumer)
    monkeypatch.setattr(kafka, "ensure_topics", no_topics)

    async def handler(conn, event):  # never called
        raise AssertionError

    runner = ConsumerRunner(
        bootstrap_servers="127.0.0.1:1", group_id="alerts", handlers={FEEDBACK_RECEIVED: handler},
        pool=None, publisher=runtime.publisher, security=runtime.kafka_security,
    )
    task = asyncio.create_task(runner.run())
    try:
        for _ in range(200):
            if "consumer" in built:
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert built["runner_topics_security"] == runtime.kafka_security
    assert {k: v for k, v in client_options(built["consumer"]).items() if k != "ssl_context"} == expected(settings)
    await built["consumer"].stop()


# --- a real TLS handshake with the configured CA -------------------------------------------

def make_ca_and_server_cert(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate for 127.0.0.1 signed by it (openssl)."""
    ca_key, ca_crt = directory / f"{name}-ca.key", directory / f"{name}-ca.crt"
    key, csr, crt = directory / f"{name}.key", directory / f"{name}.csr", directory / f"{name}.crt"
    ext = directory / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key), "-out", str(ca_crt),
        "-days", "1", "-subj", f"/CN={name} test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "1", "-extfile", str(ext))
    return ca_crt, crt, key


@pytest.fixture
def tls_server(tmp_path):
    ca, crt, key = make_ca_and_server_cert(tmp_path, "broker")
    other_ca, _, _ = make_ca_and_server_cert(tmp_path, "other")
    return ca, other_ca, crt, key


async def handshakes(ca_file: Path, crt: Path, key: Path) -> int:
    """Start the publisher against a TLS listener (not a Kafka broker); count completed handshakes."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(crt, key)
    done = 0

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal done
        done += 1  # called only once the TLS handshake succeeded
        writer.close()

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    settings = ServiceSettings(keymoment_env="test", kafka_security_protocol="SSL", kafka_ssl_cafile=ca_file)
    publisher = Publisher(f"127.0.0.1:{port}", client_id="tls-test", send_timeout=2, security=client_security(settings))
    try:
        with pytest.raises(Exception):  # noqa: B017 - not a broker: the start fails after (or at) the handshake
            await asyncio.wait_for(publisher.start(), 15)
    finally:
        await publisher.stop()
        server.close()
        await server.wait_closed()
    return done


async def test_tls_handshake_uses_the_configured_ca(tls_server):
    ca, other_ca, crt, key = tls_server
    assert await handshakes(ca, crt, key) >= 1
    assert await handshakes(other_ca, crt, key) == 0
