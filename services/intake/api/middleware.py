"""Pure ASGI middleware (cheap on the hot path): body size limits and CORS."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import orjson

Scope = dict
ASGIApp = Callable


async def send_json(send: Callable, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    *headers],
    })
    await send({"type": "http.response.body", "body": payload})


class BodyLimit:
    """Refuse bodies above the path's limit with 413, judged by Content-Length
    first and by the bytes actually received otherwise (chunked uploads): the
    body is buffered only up to the limit, never beyond. ``limits`` is read on
    every request, so routes added later can register their own."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, int]) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit = self.limits.get(scope["path"])
        if limit is None:
            await self.app(scope, receive, send)
            return
        too_large = {"detail": f"body larger than {limit} bytes", "errors": []}
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    if int(value) > limit:
                        await send_json(send, 413, too_large, [(b"connection", b"close")])
                        return
                except ValueError:
                    await send_json(send, 400, {"detail": "invalid Content-Length", "errors": []})
                    return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                await send_json(send, 413, too_large, [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        delivered = False

        async def replay() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class KeyCors:
    """CORS for browser sources (kiosks, web forms) whose allowed origins live on their API keys.

    A preflight carries no API key, so it is answered for the union of all
    active keys' origins; the actual request is then checked against its own
    key's origins (403 otherwise, in the API-key dependency).
    """

    ALLOW_HEADERS = b"X-API-Key, Content-Type, Idempotency-Key"
    ALLOW_METHODS = b"POST, OPTIONS"

    def __init__(self, app: ASGIApp, origins: Callable[[], frozenset[str]], prefix: str = "/v1/") -> None:
        self.app = app
        self.origins = origins
        self.prefix = prefix

    def _allowed(self, origin: str) -> bool:
        origins = self.origins()
        return "*" in origins or origin in origins

    async def __call__(self, scope: Scope, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        origin = None
        preflight = False
        for name, value in scope["headers"]:
            if name == b"origin":
                origin = value
            elif name == b"access-control-request-method":
                preflight = True
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = self._allowed(origin.decode("latin-1"))
        if scope["method"] == "OPTIONS" and preflight:
            if not allowed:
                await send_json(send, 403, {"detail": "origin not allowed by any API key", "errors": []},
                                 [(b"vary", b"Origin")])
                return
            await send({"type": "http.response.start", "status": 204, "headers": [
                (b"access-control-allow-origin", origin),
                (b"access-control-allow-methods", self.ALLOW_METHODS),
                (b"access-control-allow-headers", self.ALLOW_HEADERS),
                (b"access-control-max-age", b"600"),
                (b"vary", b"Origin"),
            ]})
            await send({"type": "http.response.body", "body": b""})
            return
        if not allowed:
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: dict) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", origin),
                    (b"access-control-expose-headers", b"Retry-After"),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, send_with_cors)
