"""Health that means "can do its job": intake is ready while Kafka or its outbox takes writes and says
which; a consumer service's readiness ignores the broker; reasons name the dependency, never an
exception's text; liveness catches a stalled event loop."""

from __future__ import annotations

import asyncio
import logging
import time

import asyncpg
import httpx

from keymoment.devstack.stack import KAFKA, Stack
from services.intake.app import create_app as create_intake
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from shared.runtime import LoopWatchdog
from tests.integration.intake.support import intake_settings, serving_unready
from tests.support.services import wait_until


async def _readyz(url: str) -> tuple[int, dict]:
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.get(f"{url}/readyz")
        return r.status_code, r.json()


async def _block_database(admin: asyncpg.Connection, name: str) -> None:
    await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    await admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)


async def test_readiness_follows_what_each_service_needs(service_env, database_url, postgres_server, tmp_path):
    broker = Stack(tmp_path, kafka=True, postgres=False).start()  # its own broker: this test stops it
    env = {**service_env, "kafka_bootstrap_servers": broker.bootstrap_servers}
    db_name = database_url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(postgres_server.dsn("postgres"))
    try:
        intake_app = create_intake(intake_settings(env, intake_publish_timeout_seconds=1.0))
        reporting_app = create_reporting(ReportingSettings(**env, reporting_refresh_seconds=0.2))
        async with serving_unready(intake_app) as intake, serving_unready(reporting_app) as reporting:
            await wait_until(lambda: _ok(intake.url), timeout=30, what="intake ready")
            await wait_until(lambda: _ok(reporting.url), timeout=30, what="reporting ready")
            assert await _readyz(intake.url) == (200, {"status": "ok", "path": "kafka"})
            await wait_until(lambda: _is(reporting.url, (200, {"status": "ok"})), timeout=30, what="consumer running")

            broker.stop_component(KAFKA)
            await wait_until(lambda: _path(intake.url, "outbox"), timeout=30, what="intake on the outbox path")
            assert await _readyz(intake.url) == (200, {"status": "ok", "path": "outbox", "degraded": ["kafka"]})
            status, body = await _readyz(reporting.url)  # consumers have no traffic to shed: still ready
            assert status == 200 and "kafka" in body["degraded"], body

            await _block_database(admin, db_name)
            try:
                await wait_until(lambda: _status(intake.url, 503), timeout=30, what="intake unready")
                assert await _readyz(intake.url) == (503, {"status": "unavailable", "reasons": ["kafka", "database"]})
                await wait_until(lambda: _status(reporting.url, 503), timeout=30, what="reporting unready")
                status, body = await _readyz(reporting.url)
                assert "database" in body["reasons"], body
                # names, never an exception's text (no class names, no addresses, no driver messages)
                text = str(body)
                assert "Error" not in text and "127.0.0.1" not in text and "connection" not in text, body
            finally:
                await admin.execute(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true')

            broker.start_component(KAFKA)
            await wait_until(lambda: _path(intake.url, "kafka"), timeout=60, what="intake back on the kafka path")
            await wait_until(lambda: _ok(reporting.url), timeout=60, what="reporting ready again")
            # liveness never followed the dependencies
            async with httpx.AsyncClient(timeout=5) as http:
                assert (await http.get(f"{intake.url}/healthz")).status_code == 200
    finally:
        await admin.close()
        broker.stop()


async def _is(url: str, expected: tuple[int, dict]) -> bool:
    return await _readyz(url) == expected


async def _ok(url: str) -> bool:
    return await _status(url, 200)


async def _status(url: str, status: int) -> bool:
    try:
        return (await _readyz(url))[0] == status
    except httpx.HTTPError:
        return False


async def _path(url: str, path: str) -> bool:
    try:
        return (await _readyz(url))[1].get("path") == path
    except httpx.HTTPError:
        return False


def _blocking_step() -> None:
    time.sleep(1.2)  # a synchronous call on the event loop


async def test_the_watchdog_sees_a_stalled_loop_and_names_what_blocks_it(caplog):
    caplog.set_level(logging.ERROR, logger="shared.runtime")
    lags: list[float] = []
    watchdog = LoopWatchdog(stall_after=0.4, interval=0.1, on_lag=lags.append)
    task = asyncio.create_task(watchdog.run())
    try:
        await asyncio.sleep(0.3)
        assert watchdog.stalled_for() is None
        _blocking_step()
        assert watchdog.stalled_for() is not None  # seen from the loop right after the block
        await asyncio.sleep(0.3)
        assert watchdog.stalled_for() is None and max(lags) > 0.5  # the tick after the block was late
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert watchdog.stalls == 1
    [record] = [r for r in caplog.records if r.getMessage() == "event loop stalled"]
    assert "_blocking_step" in record.stack
