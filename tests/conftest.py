"""Test harness: a real Kafka-protocol broker (Tansu) and a real PostgreSQL,
started once per session on free ports and torn down at the end. Each test
gets its own topics (a random prefix), consumer groups and database, so tests
cannot leak into each other.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import asyncpg
import pytest

from keymoment.devstack.ports import free_port

ROOT = Path(__file__).resolve().parent.parent
KAFKA_TEST_SESSION_TIMEOUT_MS = 3_000


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="keymoment-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def kafka_broker(workdir, request):
    """A Tansu broker (Kafka wire protocol, memory storage); log dumped if a test failed."""
    from keymoment.devstack.broker import TansuBroker

    broker = TansuBroker(free_port(), workdir / "broker.log")
    broker.start()
    yield broker
    if request.session.testsfailed:
        print(f"\n--- broker log (last lines) ---\n{broker.log_tail(60)}")
    broker.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker) -> str:
    return kafka_broker.bootstrap_servers


@pytest.fixture(scope="session")
def postgres_server(workdir, request):
    from keymoment.devstack.postgres import EmbeddedPostgres

    server = EmbeddedPostgres(workdir / "pg", free_port(), workdir / "postgres.log")
    server.start()
    yield server
    if request.session.testsfailed:
        print(f"\n--- postgres log (last lines) ---\n{server.log_tail(40)}")
    server.stop()


@pytest.fixture
async def database_url(postgres_server) -> str:
    """A fresh database for this test (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres_server.dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield postgres_server.dsn(name)
    admin = await asyncpg.connect(postgres_server.dsn("postgres"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def topic_prefix() -> str:
    """Each test's own topics: every service in the test uses this prefix."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def service_env(kafka_bootstrap, database_url, topic_prefix) -> dict:
    """Keyword arguments for any service's Settings(...) in this test."""
    return {
        "keymoment_env": "test",
        "kafka_bootstrap_servers": kafka_bootstrap,
        "kafka_topic_prefix": topic_prefix,
        "kafka_topic_partitions": 2,
        "database_url": database_url,
        "kafka_consumer_group": None,
        # Tansu delays a group join by half the session timeout: keep tests quick.
        "kafka_session_timeout_ms": KAFKA_TEST_SESSION_TIMEOUT_MS,
    }


@pytest.fixture
def group_suffix() -> str:
    return uuid.uuid4().hex[:8]
