"""The kiosk page and assets: served from the package, locked down, validated."""

import httpx
from fastapi import FastAPI

from services.intake.api import kiosk


def client() -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(kiosk.router)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://intake.test")


async def test_page_is_self_contained_and_locked_down():
    async with client() as c:
        response = await c.get("/kiosk", params={"location": "store-12", "touchpoint": "exit"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    html = response.text
    assert "http://" not in html and "https://" not in html  # no CDN, works offline
    assert '<script src="/kiosk/static/kiosk.js"' in html


async def test_assets_and_service_worker():
    async with client() as c:
        await _assets(c)


async def _assets(c: httpx.AsyncClient) -> None:
    js = await c.get("/kiosk/static/kiosk.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "Idempotency-Key" in js.text and "https://" not in js.text
    assert (await c.get("/kiosk/static/kiosk.css")).headers["content-type"].startswith("text/css")
    sw = await c.get("/kiosk/sw.js")
    assert sw.status_code == 200 and sw.headers["service-worker-allowed"] == "/kiosk"
    assert (await c.get("/kiosk/static/index.html")).status_code == 404  # only the listed assets
    assert (await c.get("/kiosk/static/..%2F__init__.py")).status_code == 404


async def test_query_is_validated():
    async with client() as c:
        await _query(c)


async def _query(c: httpx.AsyncClient) -> None:
    assert (await c.get("/kiosk", params={"reset": "0"})).status_code == 422
    assert (await c.get("/kiosk", params={"lang": "fr"})).status_code == 422
    assert (await c.get("/kiosk", params={"location": "x" * 121})).status_code == 422
