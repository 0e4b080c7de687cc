"""The kiosk page and its assets (same origin as the API, so no CORS is needed)."""

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from services.intake.kiosk import STATIC_DIR

router = APIRouter(tags=["kiosk"])

_ASSETS = {"kiosk.js": "text/javascript", "kiosk.css": "text/css"}
_SECURITY_HEADERS = {
    # Nothing leaves for another origin; the API key lives in the URL fragment and localStorage only.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@router.get("/kiosk", summary="Kiosk page (open as /kiosk?location=...&touchpoint=...#key=KIOSK_KEY)")
async def kiosk_page(
    location: Annotated[str | None, Query(max_length=120, description="Store, branch, airport ... (required by the page)")] = None,
    touchpoint: Annotated[str | None, Query(max_length=120, description="Where in the journey, e.g. checkout")] = None,
    lang: Annotated[str | None, Query(pattern="^(zh-CN|en)$", description="Start language; the page has a switch")] = None,
    device: Annotated[str | None, Query(max_length=200, description="Device id sent with each tap (default: made once per browser)")] = None,
    reset: Annotated[float | None, Query(ge=1, le=60, description="Seconds the thank-you screen shows (default 4)")] = None,
    idle: Annotated[float | None, Query(ge=5, le=300, description="Seconds before an unfinished comment is sent without it (default 20)")] = None,
) -> FileResponse:
    # The parameters are read by the page's script; they are declared here for validation and the docs.
    return FileResponse(
        STATIC_DIR / "index.html", media_type="text/html; charset=utf-8",
        headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


@router.get("/kiosk/sw.js", include_in_schema=False)
async def kiosk_service_worker() -> FileResponse:
    return FileResponse(
        STATIC_DIR / "sw.js", media_type="text/javascript",
        headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache", "Service-Worker-Allowed": "/kiosk"},
    )


@router.get("/kiosk/static/{name}", include_in_schema=False)
async def kiosk_asset(name: str) -> FileResponse:
    if name not in _ASSETS:
        raise HTTPException(404, "not found")
    return FileResponse(
        STATIC_DIR / name, media_type=_ASSETS[name],
        headers={**_SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )
