"""``POST /v1/feedback`` served as plain ASGI, below FastAPI's routing.

The busiest route does little work of its own (authenticate, validate one
JSON body, publish one event), so FastAPI's per-request machinery (route
resolution, dependency solving, the request/response wrappers) was most of
its cost. :class:`FeedbackHotPath` answers that one route itself; FastAPI
still documents it (the route in :mod:`services.intake.api.feedback` is its
OpenAPI entry) and still serves every other route. The middlewares outside it
(CORS, body size limit, HTTP metrics) apply unchanged.

What to answer is decided in one place for both,
:func:`services.intake.api.submit.submit_feedback` (checks and their order
are described there): this module only reads the headers and the body and
sends the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from services.intake.api.submit import submit_feedback
from services.intake.service import Context
from shared.http import send_json

PATH = "/v1/feedback"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _body(receive: Receive) -> bytes | None:
    """The whole body (its size is already bounded by the RequestLimits middleware); None on disconnect."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class FeedbackHotPath:
    """Pure ASGI middleware answering ``POST /v1/feedback``; everything else passes through.

    ``route`` is the documented FastAPI route: it is put in the scope, as the
    router would, so metrics label requests by its template.
    """

    def __init__(self, app: Callable, context: Context, route: Any = None) -> None:
        self.app = app
        self.context = context
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.route is not None:
            scope["route"] = self.route
        wanted = {b"x-api-key": None, b"idempotency-key": None, b"origin": None, b"content-type": None}
        for name, value in scope["headers"]:
            if name in wanted and wanted[name] is None:  # the first of a repeated header, as Starlette reads it
                wanted[name] = value.decode("latin-1")
        body = await _body(receive)
        if body is None:
            return
        status, payload, headers = await submit_feedback(
            self.context, api_key=wanted[b"x-api-key"], origin=wanted[b"origin"],
            idempotency_key=wanted[b"idempotency-key"], content_type=wanted[b"content-type"], body=body,
        )
        await send_json(send, status, payload, [(k.lower().encode(), v.encode()) for k, v in headers.items()])
