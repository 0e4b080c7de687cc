"""Run service apps for real inside the test's event loop: uvicorn on a free
port, full lifespan (migrations, producer, consumers, relay)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import uvicorn
from fastapi import FastAPI

from keymoment.devstack.ports import free_port


class RunningService:
    def __init__(self, app: FastAPI, port: int) -> None:
        self.app = app
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    @property
    def runtime(self):
        return self.app.state.runtime

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=10, **kwargs)


@contextlib.asynccontextmanager
async def running(app: FastAPI, *, ready_timeout: float = 30.0) -> AsyncIterator[RunningService]:
    """Serve ``app`` until the block exits; waits for /readyz to answer 200."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    server.install_signal_handlers = lambda: None  # the test runner owns signals
    task = asyncio.create_task(server.serve())
    service = RunningService(app, port)
    try:
        await wait_until(lambda: _ready(service), timeout=ready_timeout, what=f"{app.title} /readyz")
        yield service
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


async def _ready(service: RunningService) -> bool:
    try:
        async with httpx.AsyncClient(timeout=2) as client:
            return (await client.get(f"{service.url}/readyz")).status_code == 200
    except httpx.HTTPError:
        return False


async def wait_until(
    predicate: Callable[[], Awaitable[bool] | bool], *, timeout: float = 20.0, interval: float = 0.05, what: str = "condition"
) -> None:
    """Poll (bounded) until predicate is true; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)
