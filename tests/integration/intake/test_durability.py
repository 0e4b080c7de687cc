"""A 202 is a promise kept: Kafka down means the outbox; Kafka back means every
accepted feedback downstream exactly once; Kafka AND PostgreSQL down means 503."""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from keymoment.devstack.ports import free_port
from keymoment.devstack.stack import KAFKA, Stack
from services.intake.app import create_app
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from tests.integration.intake.support import dev_headers, intake, intake_settings, serving_unready
from tests.support.services import running, wait_until

N = 1000
FELL_BACK = "kafka unavailable; writing to outbox"  # shared.outbox logs it for each request that waited for Kafka


async def test_broker_outage_loses_nothing_and_duplicates_nothing(service_env, database_url, tmp_path, caplog):
    broker = Stack(tmp_path, kafka=True, postgres=False).start()  # its own broker: this test stops it
    env = {**service_env, "kafka_bootstrap_servers": broker.bootstrap_servers}
    conn = await asyncpg.connect(database_url)
    try:
        async with intake(env, intake_publish_timeout_seconds=1.0) as svc, running(
            create_reporting(ReportingSettings(**env))
        ), svc.client() as http:
            broker.stop_component(KAFKA)
            caplog.set_level(logging.WARNING, logger="shared.outbox")
            gate = asyncio.Semaphore(32)

            async def post(i: int) -> tuple[int, str]:
                async with gate:
                    r = await http.post("/v1/feedback", headers=dev_headers(svc, **{"Idempotency-Key": f"outage-{i}"}),
                                        json={"channel": "kiosk", "rating": {"scale": "mot", "value": i % 7 - 3},
                                              "location": f"store-{i % 5}", "touchpoint": "checkout"})
                    return r.status_code, r.json().get("id")

            results = await asyncio.gather(*(post(i) for i in range(N)))
            assert [status for status, _ in results] == [202] * N
            ids = {feedback_id for _, feedback_id in results}
            assert len(ids) == N
            assert await conn.fetchval("SELECT count(*) FROM intake.outbox") == N
            assert await conn.fetchval("SELECT count(*) FROM reporting.feedback_facts") == 0
            # While Kafka is down only the first requests wait (at most the publish timeout): those
            # in flight when it went (32 at most); the rest go straight to the outbox.
            waited = [r for r in caplog.records if r.name == "shared.outbox" and r.getMessage().startswith(FELL_BACK)]
            assert 1 <= len(waited) <= 32, len(waited)

            broker.start_component(KAFKA)  # same port; memory storage: an empty broker

            async def all_downstream() -> bool:
                return await conn.fetchval("SELECT count(*) FROM reporting.feedback_facts") >= N

            await wait_until(all_downstream, timeout=90, interval=0.2, what=f"{N} rows in reporting.feedback_facts")
            await wait_until(lambda: _outbox_empty(conn), timeout=20, what="intake outbox drained")
            stored = {r["feedback_id"] for r in await conn.fetch("SELECT feedback_id FROM reporting.feedback_facts")}
            assert stored == ids
            # Consumed once each: every event id recorded once by reporting's dedupe table.
            assert await conn.fetchval(
                "SELECT count(*) FROM reporting.processed_events WHERE event_id = ANY($1::text[])", list(ids)
            ) == N
            # Back to direct publishing once the outbox drained.
            r = await http.post("/v1/feedback", headers=dev_headers(svc), json={"channel": "web", "text": "back"})
            assert r.status_code == 202
            assert await conn.fetchval("SELECT count(*) FROM intake.outbox") == 0
            assert svc.runtime.relay.backlog is False
    finally:
        await conn.close()
        broker.stop()


async def _outbox_empty(conn: asyncpg.Connection) -> bool:
    return await conn.fetchval("SELECT count(*) FROM intake.outbox") == 0


async def test_kafka_and_postgres_down_is_503_never_2xx(service_env, database_url, postgres_server):
    dead_kafka = f"127.0.0.1:{free_port()}"  # nothing listens there
    app = create_app(intake_settings(service_env, kafka_bootstrap_servers=dead_kafka))
    db_name = database_url.rsplit("/", 1)[1]
    async with serving_unready(app) as svc, svc.client() as http:
        await wait_until(lambda: app.state.runtime.started, what="intake started")
        body = {"channel": "web", "text": "Kafka is down but the database is up"}
        kafka_down = await http.post("/v1/feedback", headers=dev_headers(svc), json=body)
        assert kafka_down.status_code == 202  # into the outbox
        admin = await asyncpg.connect(postgres_server.dsn("postgres"))
        try:
            await admin.execute(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                db_name,
            )
            async with asyncio.timeout(60):  # answered, never hanging (generous: a busy machine is no failure)
                both_down = [await http.post("/v1/feedback", headers=dev_headers(svc), json=body) for _ in range(3)]
                batch = await http.post("/v1/feedback:batch", headers=dev_headers(svc), json=[body, body])
        finally:
            await admin.execute(f'ALTER DATABASE "{db_name}" ALLOW_CONNECTIONS true')
            await admin.close()
    assert [r.status_code for r in both_down] == [503, 503, 503]
    assert all(r.headers["Retry-After"].isdigit() for r in both_down)
    assert "nothing was accepted" in both_down[0].json()["detail"]
    assert batch.status_code == 503 and batch.headers["Retry-After"]
