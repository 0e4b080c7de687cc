"""Helpers for intake's integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer

from keymoment.devstack.ports import free_port
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.events import Envelope
from tests.support.services import RunningService, running, wait_until


def intake_settings(service_env: dict, **overrides) -> IntakeSettings:
    return IntakeSettings(**{**service_env, **overrides})


def dev_headers(service: RunningService, **extra: str) -> dict[str, str]:
    return {"X-API-Key": service.runtime.settings.dev_api_key.get_secret_value(), **extra}


@contextlib.asynccontextmanager
async def intake(service_env: dict, **overrides) -> AsyncIterator[RunningService]:
    async with running(create_app(intake_settings(service_env, **overrides))) as service:
        yield service


@contextlib.asynccontextmanager
async def serving_unready(app, *, timeout: float = 30.0) -> AsyncIterator[RunningService]:
    """Serve an app that is live but not ready (e.g. its broker is down): waits for /healthz only."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    server.install_signal_handlers = lambda: None
    task = asyncio.create_task(server.serve())
    service = RunningService(app, port)

    async def live() -> bool:
        if task.done():
            task.result()
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{service.url}/healthz")).status_code == 200 and server.started
        except httpx.HTTPError:
            return False

    try:
        await wait_until(live, timeout=timeout, what="intake /healthz")
        yield service
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def read_events(bootstrap: str, topic: str, count: int, *, timeout: float = 20.0) -> list[Envelope]:
    """Read ``count`` events from the start of ``topic`` (fails after ``timeout``)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"test-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest", enable_auto_commit=False, session_timeout_ms=3000,
        heartbeat_interval_ms=750,
    )
    await consumer.start()
    events: list[Envelope] = []
    try:
        async with asyncio.timeout(timeout):
            while len(events) < count:
                batch = await consumer.getmany(timeout_ms=300)
                for messages in batch.values():
                    for m in messages:
                        events.append(Envelope.from_kafka(headers=list(m.headers), key=m.key, value=m.value))
    finally:
        await consumer.stop()
    return events
