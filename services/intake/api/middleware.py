"""Pure ASGI middleware (cheap on the hot path): CORS for keys' browser origins.
Body size limits are the shared :class:`shared.http.RequestLimits`."""

from __future__ import annotations

from collections.abc import Callable

from shared.http import send_json

Scope = dict
ASGIApp = Callable


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
