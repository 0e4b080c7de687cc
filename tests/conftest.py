"""Test harness: a real Kafka-protocol broker (Tansu) and a real PostgreSQL,
started once per session on free ports and torn down at the end. Each test
gets its own topics (a random prefix), consumer groups and database, so tests
cannot leak into each other.

Every test under tests/integration/ and tests/faults/ carries the ``integration`` marker and
every test under tests/e2e/ the ``e2e`` marker (``make test-unit``,
``test-integration`` and ``test-e2e`` select on them); ``browser`` and
``prometheus`` are set by the tests that need those binaries.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parent.parent
KAFKA_TEST_SESSION_TIMEOUT_MS = 3_000
LEVEL_BY_DIRECTORY = {"integration": "integration", "faults": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its level from the directory it lives in."""
    tests = ROOT / "tests"
    for item in items:
        if not item.path.is_relative_to(tests):
            continue
        level = LEVEL_BY_DIRECTORY.get(item.path.relative_to(tests).parts[0])
        if level is not None:
            item.add_marker(level)


@pytest.fixture(scope="session")
def workdir():
    path = Path(tempfile.mkdtemp(prefix="keymoment-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack(workdir, request):
    """The session's Tansu broker (Kafka wire protocol, memory storage) and PostgreSQL
    (``keymoment.devstack.Stack``); their logs are printed if a test failed."""
    from keymoment.devstack.stack import Stack

    with Stack(workdir, kafka=True, postgres=True, database=None) as running:
        yield running
        if request.session.testsfailed:
            print(f"\n--- stack logs (last lines) ---\n{running.log_tails(60)}")


@pytest.fixture(scope="session")
def kafka_broker(stack):
    return stack.broker


@pytest.fixture(scope="session")
def kafka_bootstrap(stack) -> str:
    return stack.bootstrap_servers


@pytest.fixture(scope="session")
def postgres_server(stack):
    return stack.postgres


@pytest.fixture
async def database_url(postgres_server) -> str:
    """A fresh database for this test (dropped afterwards)."""
    from tests.support.database import fresh_database

    async with fresh_database(postgres_server) as dsn:
        yield dsn


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
        # Survey's default quiet hours (21:00-08:00 Asia/Shanghai) would defer every invitation a test
        # waits for, depending on when it runs; the contact-rule tests set them on a manual clock.
        "survey_quiet_hours": "",
    }


@pytest.fixture
def group_suffix() -> str:
    return uuid.uuid4().hex[:8]
