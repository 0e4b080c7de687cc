"""What install() puts in front of every service: request limits whose routes exist, bounded
422 answers, and /metrics behind METRICS_TOKEN when it is set."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from shared.runtime import ServiceRuntime, install
from shared.settings import ServiceSettings

TOKEN = "5d41402abc4b2a76b9719d911017c592a"


class Thing(BaseModel):
    name: str
    size: int


def _app(**settings) -> FastAPI:
    runtime = ServiceRuntime(ServiceSettings(keymoment_env="test", **settings), migrations=Path("."))
    app = FastAPI(title="t")
    @app.post("/things/{thing_id}")
    async def create(thing_id: str, thing: Thing) -> dict:
        return {"id": thing_id}

    install(app, runtime, limits={"/things/{thing_id}": 2_000})
    runtime.expose(lambda: b"# HELP cx_demo x\n# TYPE cx_demo gauge\ncx_demo 1.0\n")
    return app


async def _request(app: FastAPI, method: str, path: str, **kwargs) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.request(method, path, **kwargs)


async def test_a_route_limit_that_names_no_route_stops_the_start():
    runtime = ServiceRuntime(ServiceSettings(keymoment_env="test"), migrations=Path("."))
    broken = FastAPI(title="broken")
    install(broken, runtime, limits={"/v1/kpi": 10})  # a typo would otherwise fall back to the default silently
    with pytest.raises(ValueError, match="request limits name no route of broken: /v1/kpi"):
        async with broken.router.lifespan_context(broken):
            pass


async def test_route_limits_follow_templates_and_422_answers_echo_a_bounded_excerpt():
    app = _app(http_max_body_bytes=1024)
    big = await _request(app, "POST", "/things/a", json={"name": "x" * 1990})
    assert (big.status_code, big.json()["code"]) == (413, "too_large")
    wrong = await _request(app, "POST", "/things/a", json={"name": 5, "size": "灰" * 600})
    assert wrong.status_code == 422
    detail = wrong.json()["detail"]
    assert {e["loc"][-1] for e in detail} == {"name", "size"}
    size = next(e for e in detail if e["loc"][-1] == "size")
    assert size["input"] == "灰" * 99 + "…" and "ctx" not in size and "url" not in size
    deep = await _request(app, "POST", "/things/a", content=b"[" * 40 + b"]" * 40,
                          headers={"Content-Type": "application/json"})
    assert (deep.status_code, deep.json()["code"]) == (422, "too_deep")


async def test_metrics_needs_the_scrape_token_when_one_is_set():
    open_app = _app()
    assert (await _request(open_app, "GET", "/metrics")).status_code == 200
    guarded = _app(metrics_token=TOKEN)
    anonymous = await _request(guarded, "GET", "/metrics")
    wrong = await _request(guarded, "GET", "/metrics", headers={"Authorization": "Bearer " + TOKEN[::-1]})
    scraper = await _request(guarded, "GET", "/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    admin = await _request(guarded, "GET", "/metrics", headers={"Authorization": "Bearer dev-admin-token"})
    assert (anonymous.status_code, anonymous.headers["www-authenticate"]) == (401, "Bearer")
    assert "cx_demo" not in anonymous.text and wrong.status_code == 401
    assert scraper.status_code == admin.status_code == 200
    assert "cx_demo 1.0" in scraper.text and "process_cpu_seconds_total" in scraper.text
