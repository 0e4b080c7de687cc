"""The per-client rate limit of the public pages (``/s/...``, ``/u/...``): pure ASGI, in front of
every route, so a refused request costs a dictionary lookup, never a body read or a query.

The client is the address uvicorn reports: the peer, or the X-Forwarded-For client when the peer is
one of uvicorn's ``FORWARDED_ALLOW_IPS`` (set it to the ingress's addresses, else every customer
behind one proxy shares a limit). Limits are per process (``shared.ratelimit``). The per-link and
per-survey limits need the verified link and the survey, and are applied by the routes.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from services.survey.metrics import SurveyMetrics
from services.survey.pages import pick_language, render_message
from shared.ratelimit import KeyedLimiter

Scope = dict[str, Any]
ASGIApp = Callable[[Scope, Callable, Callable], Awaitable[None]]
PUBLIC_PREFIXES = ("/s/", "/u/")


def retry_after(wait: float) -> str:
    return str(max(1, math.ceil(min(wait, 3600.0))))


def too_many_response(headers: list[tuple[bytes, bytes]], wait: float) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The 429 answer: JSON for an API client, a bilingual page for a browser."""
    fields = {k.lower(): v.decode("latin-1") for k, v in headers}
    wants_json = "application/json" in fields.get(b"accept", "") or fields.get(b"content-type", "").startswith(
        "application/json")
    if wants_json:
        body = b'{"detail":"too many requests","code":"too_many"}'
        kind = b"application/json"
    else:
        lang = pick_language(None, None, fields.get(b"accept-language"))
        body = render_message("too_many", lang).encode()
        kind = b"text/html; charset=utf-8"
    return 429, [(b"content-type", kind), (b"retry-after", retry_after(wait).encode()),
                 (b"cache-control", b"no-store"), (b"content-length", str(len(body)).encode())], body


def too_many(metrics: SurveyMetrics, request: Request, limit: str, wait: float) -> Response:
    """The 429 of a limit a route applies (``link`` or ``survey``), counted."""
    metrics.rate_limited.labels(limit).inc()
    code, headers, body = too_many_response(request.scope["headers"], wait)
    return Response(body, status_code=code, headers={k.decode(): v.decode() for k, v in headers})


class ClientRateLimit:
    """429 with ``Retry-After`` once a client address exceeds its requests per minute."""

    def __init__(self, app: ASGIApp, *, limiter: KeyedLimiter, metrics: SurveyMetrics) -> None:
        self.app = app
        self.limiter = limiter
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.limiter.take(client[0] if client else "unknown")
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        self.metrics.rate_limited.labels("client").inc()
        status, headers, body = too_many_response(scope["headers"], wait)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
