"""Limits before work, on every route of every service (issue 14, item 2): the four services
run for real (uvicorn, database, broker) and every route their routers declare is sent

- a 50 MB body, declared and chunked, without credentials: 413 (or 401) within 1 s, the
  process's peak memory growing by less than 20 MB;
- 100,000-deep JSON, and 20,000-deep JSON that fits every limit, with credentials: a 4xx;
- a body whose every field is wrong, with a 60 KB value and a 60 KB key: the answer echoes
  no more than a bounded excerpt of it.

Routes are read from each app's router, so a new route is covered without touching this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import httpx
import orjson
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts

from services.alerts.app import create_app as alerts_app
from services.alerts.settings import AlertsSettings
from services.intake.app import create_app as intake_app
from services.reporting.app import create_app as reporting_app
from services.reporting.settings import ReportingSettings
from services.survey.app import create_app as survey_app
from services.survey.settings import SurveySettings
from tests.integration.intake_channels.support import dev_key, intake_settings
from tests.support.services import RunningService, running

pytestmark = pytest.mark.integration

BODY_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
FIFTY_MB = 50 * 1024 * 1024
CHUNK = b"a" * 65536
ADMIN_TOKEN = "dev-admin-token"  # the test environment's built-in admin token


@dataclass
class Stack:
    services: dict[str, RunningService]
    intake_key: str
    failures: list[str] = field(default_factory=list)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}", "X-API-Key": self.intake_key}


def routes(app: FastAPI, methods: set[str] = BODY_METHODS) -> list[tuple[str, str]]:
    """Every (method, path) an app's router serves with one of ``methods``; path parameters filled in."""
    found = []
    for route in iter_route_contexts(app.routes):  # included routers' routes too
        for method in sorted(set(route.methods or ()) & methods):
            found.append((method, re.sub(r"\{[^}]+\}", "p-1", route.path)))
    return found


def body_routes(app: FastAPI) -> list[tuple[str, str]]:
    return routes(app, BODY_METHODS)


@contextlib.asynccontextmanager
async def four_services(service_env: dict) -> AsyncIterator[Stack]:
    apps = {
        "intake": intake_app(intake_settings(service_env)),
        "survey": survey_app(SurveySettings(**service_env)),
        "alerts": alerts_app(AlertsSettings(**service_env)),
        "reporting": reporting_app(ReportingSettings(**service_env)),
    }
    async with contextlib.AsyncExitStack() as stack:
        services = {name: await stack.enter_async_context(running(app)) for name, app in apps.items()}
        yield Stack(services, dev_key(services["intake"]))


def _vm(field_name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"{field_name} not in /proc/self/status")


def _reset_peak() -> int:
    """Reset the process's peak RSS to its current RSS (Linux); returns the current RSS."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear:
        clear.write("5")
    return _vm("VmRSS")


async def send_big(port: int, method: str, path: str, *, chunked: bool, size: int = FIFTY_MB) -> tuple[int, float]:
    """Send a body of ``size`` bytes (declared in Content-Length, or chunked without one) as fast
    as the server reads it; stop when it answers. Returns (status, seconds to the status line)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    started = time.perf_counter()
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode())
    status_line = asyncio.create_task(reader.readline())
    sent = 0
    try:
        while sent < size and not status_line.done():
            writer.write(b"%x\r\n%s\r\n" % (len(CHUNK), CHUNK) if chunked else CHUNK)
            sent += len(CHUNK)
            drained = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drained, status_line}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
            if not drained.done():
                drained.cancel()
                break
            drained.result()
    except (ConnectionError, OSError):
        pass  # the server answered and closed while the body was still coming: expected
    try:
        line = await asyncio.wait_for(status_line, 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    elapsed = time.perf_counter() - started
    assert line.startswith(b"HTTP/1.1 "), (method, path, line)
    return int(line.split()[1]), elapsed


async def test_a_50_mb_body_to_every_body_route_of_every_service_is_refused_fast_and_cheaply(service_env):
    measured: list[tuple[str, str, str, bool, int, float, int]] = []
    async with four_services(service_env) as stack:
        for name, svc in stack.services.items():
            # every route that takes a body, both ways; every other route (its GET routes, /metrics included)
            # with a declared one
            attempts = [(m, p, chunked) for m, p in body_routes(svc.app) for chunked in (False, True)]
            attempts += [(m, p, False) for m, p in routes(svc.app, {"GET"})]
            for method, path, chunked in attempts:
                before = _reset_peak()
                status, seconds = await send_big(svc.port, method, path, chunked=chunked)
                growth = _vm("VmHWM") - before
                measured.append((name, method, path, chunked, status, seconds, growth))
            async with svc.client() as http:  # and the service still serves
                assert (await http.get("/readyz")).status_code == 200, name
    report = "\n".join(f"{n:9} {m:6} {p:32} {'chunked ' if c else 'declared'} {s} {t * 1000:7.1f} ms "
                       f"{g / 2**20:5.1f} MB" for n, m, p, c, s, t, g in measured)
    print("\n" + report)
    assert {n for n, m, *_ in measured if m == "POST"} == {"intake", "survey", "alerts", "reporting"}
    assert {n for n, *_ in measured} == {"intake", "survey", "alerts", "reporting"}
    assert all(s in (413, 401) for *_, s, _, _ in measured), report
    assert all(t < 1.0 for *_, t, _ in measured), report
    assert all(g < 20 * 2**20 for *_, g in measured), report


async def test_deep_json_is_a_4xx_on_every_body_route_and_errors_echo_a_bounded_excerpt(service_env):
    very_deep = b"[" * 100_000 + b"]" * 100_000
    deep = b"[" * 20_000 + b"]" * 20_000  # 40 KB: within every route's body limit
    huge = "灰" * 20_000  # 60 KB in UTF-8
    wrong = orjson.dumps({"channel": huge, "rating": huge, "answers": huge, "ends_at": huge, "who": huge,
                          "matchers": huge, "step": huge, "note": 5, huge: 1, "id": huge})
    failures = []
    async with four_services(service_env) as stack:
        for name, svc in stack.services.items():
            async with svc.client(headers=stack.headers()) as http:
                for method, path in body_routes(svc.app):
                    for label, body in (("100,000-deep", very_deep), ("20,000-deep", deep)):
                        started = time.perf_counter()
                        response = await http.request(method, path, content=body,
                                                      headers={"Content-Type": "application/json"})
                        took = time.perf_counter() - started
                        if not 400 <= response.status_code < 500 or took > 5:
                            failures.append(f"{name} {method} {path} {label}: {response.status_code} in {took:.2f}s "
                                            f"{response.text[:200]}")
                    response = await http.request(method, path, content=wrong,
                                                  headers={"Content-Type": "application/json"})
                    echoed = max((len(m) for m in re.findall("灰+", response.text)), default=0)
                    if response.status_code >= 500 or len(response.content) > 16_384 or echoed > 200:
                        failures.append(f"{name} {method} {path} wrong fields: {response.status_code}, "
                                        f"{len(response.content)} bytes, a run of {echoed} input characters")
            async with svc.client() as http:
                assert (await http.get("/readyz")).status_code == 200, name
    assert not failures, "\n".join(failures)


async def test_an_intake_batch_of_millions_of_tiny_items_is_refused_unparsed(service_env):
    async with running(intake_app(intake_settings(service_env))) as svc, svc.client(
        headers={"X-API-Key": dev_key(svc), "Content-Type": "application/json"}
    ) as http:
        tiny = b"[" + b"{}," * (8 * 1024 * 1024 // 3 - 1) + b"{}]"  # 2.8 M items in 8 MiB
        ndjson = b"{}\n" * (8 * 1024 * 1024 // 3)
        before = _reset_peak()
        started = time.perf_counter()
        as_array = await http.post("/v1/feedback:batch", content=tiny)
        as_lines = await http.post("/v1/feedback:batch", content=ndjson,
                                   headers={"Content-Type": "application/x-ndjson"})
        took, growth = time.perf_counter() - started, _vm("VmHWM") - before
        one_too_many = await http.post("/v1/feedback:batch", json=[{"channel": "web", "text": "x"}] * 1001)
    assert (as_array.status_code, as_lines.status_code, one_too_many.status_code) == (413, 413, 413)
    assert "at most 1000 items" in as_array.json()["detail"] and "got 1001" in one_too_many.json()["detail"]
    # both bodies are held in memory by the client and the server (~4 x 8 MiB); parsing them was +254 MB
    assert growth < 80 * 2**20, f"{growth / 2**20:.0f} MB"
    assert took < 10, took
