"""``POST /v1/feedback`` served as plain ASGI, below FastAPI's routing.

The busiest route does little work of its own (authenticate, validate one
JSON body, publish one event), so FastAPI's per-request machinery (route
resolution, dependency solving, the request/response wrappers) was most of
its cost. :class:`FeedbackHotPath` answers that one route itself with the same
checks in the same order and the same answers; FastAPI still documents it
(the route in :mod:`services.intake.api.feedback` is its OpenAPI entry) and
still serves every other route. The middlewares outside it (CORS, body size
limit, HTTP metrics) apply unchanged.

Order of checks, as FastAPI resolved them: API key (401), browser origin (403),
rate limit (429), ``Idempotency-Key`` and body (422), channel (403), then
durability (202, or 503 when nothing could store it).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import ValidationError

from services.intake import service
from services.intake.api.middleware import send_json
from services.intake.api.errors import (
    RETRY_AFTER_UNAVAILABLE_S, UNAVAILABLE_DETAIL, field_errors, invalid_detail, retry_after,
)
from services.intake.keys import AuthError, RateLimited
from shared.contracts import FeedbackIn
from shared.errors import NotDurable

PATH = "/v1/feedback"

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


async def _body(receive: Receive) -> bytes | None:
    """The whole body (its size is already bounded by the BodyLimit middleware); None on disconnect."""
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
    router would, so metrics label requests by its template. The key store and
    the sink are read from ``state`` per request (they exist once the app started).
    """

    def __init__(self, app: Callable, state: Any, route: Any = None) -> None:
        self.app = app
        self.state = state
        self.route = route

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        if self.route is not None:
            scope["route"] = self.route
        api_key = idempotency_key = origin = None
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                api_key = value.decode("latin-1")
            elif name == b"idempotency-key":
                idempotency_key = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        body = await _body(receive)
        if body is None:
            return
        try:
            principal = await self.state.keys.authenticate(api_key)
            principal.require_origin(origin)
            principal.charge(1)
            errors: list[dict[str, str]] = []
            if idempotency_key is not None and len(idempotency_key) > service.MAX_IDEMPOTENCY_KEY:
                errors.append({"path": "header.Idempotency-Key", "type": "string_too_long",
                               "message": f"String should have at most {service.MAX_IDEMPOTENCY_KEY} characters"})
            try:
                feedback = FeedbackIn.model_validate_json(body)
            except ValidationError as exc:
                errors += field_errors(exc.errors(include_url=False, include_input=False), strip=())
            if errors:
                await send_json(send, 422, {"detail": invalid_detail(errors), "errors": errors})
                return
            principal.require_channel(feedback.channel)
            feedback_id = await service.accept(
                feedback, principal=principal, idempotency_key=idempotency_key, sink=self.state.sink
            )
        except RateLimited as exc:
            await send_json(send, exc.status, {"detail": str(exc), "errors": []},
                            [(b"retry-after", retry_after(exc).encode())])
            return
        except AuthError as exc:
            await send_json(send, exc.status, {"detail": str(exc), "errors": []})
            return
        except NotDurable:
            await send_json(send, 503, {"detail": UNAVAILABLE_DETAIL, "errors": []},
                            [(b"retry-after", str(RETRY_AFTER_UNAVAILABLE_S).encode())])
            return
        await send_json(send, 202, {"id": feedback_id})
