"""HTTP plumbing any service puts in front of its routes: pure ASGI (cheap on hot
paths), so it works before FastAPI parses anything.

:class:`BodyLimit` refuses a body above its path's limit with 413 while it is
read — by its declared ``Content-Length`` first, by the bytes actually received
otherwise (chunked uploads) — never buffering beyond the limit, before any
route parses it or checks credentials. A route that reads its own body with a
limit of its own uses :func:`read_body`, the same reading.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit


async def send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": payload})


async def read_body(receive: Receive, *, limit: int, declared: int | None = None) -> bytes | None:
    """The whole request body, or :class:`BodyTooLarge` as soon as it is known to exceed
    ``limit`` (``declared``: its Content-Length); None when the client went away."""
    if declared is not None and declared > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _problem(detail: str) -> dict:
    return {"detail": detail}


class BodyLimit:
    """413 for a POST/PUT/PATCH body above its path's limit (``limits``, by exact path;
    ``default`` for every other path, None: no limit). ``problem`` shapes the JSON answer
    from its detail text (a service's own error shape)."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Mapping[str, int],
        *,
        default: int | None = None,
        problem: Callable[[str], dict] = _problem,
    ) -> None:
        self.app = app
        self.limits = limits
        self.default = default
        self.problem = problem

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"], self.default)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, self.problem("invalid Content-Length"))
                    return
        try:
            body = await read_body(receive, limit=limit, declared=declared)
        except BodyTooLarge as exc:
            await send_json(send, 413, self.problem(str(exc)), [(b"connection", b"close")])
            return
        if body is None:
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
