"""Limits before work: what every service's HTTP door refuses before any route parses a
request or checks its credentials (pure ASGI, cheap on hot paths).

:class:`RequestLimits` (installed for every service by :func:`shared.runtime.install`)
answers

- **413** for a body above its route's limit — by its declared ``Content-Length``
  first, by the bytes actually received otherwise (chunked uploads) — never buffering
  beyond the limit (up to :data:`DRAIN_BYTES` more are read and dropped so the sender gets
  its answer; a larger body's connection is closed after it). Every route has a limit: its own (``limits``, by route path
  template) or the service's default (``HTTP_MAX_BODY_BYTES``).
- **422** for a JSON body (or one without a ``Content-Type``, which FastAPI reads as
  JSON) nested deeper than ``HTTP_MAX_JSON_DEPTH``, found by a scan at C speed: a
  100,000-deep body costs a few milliseconds, never a parser's recursion.

A route may take the JSON check on itself (:class:`RouteLimit` ``checks_json``), after
authenticating: intake's 8 MiB batch, whose unauthenticated callers then cost a read, not
a scan; it bounds what its parser may build with :func:`json_values_bound`. A route that
reads its own body with a limit of its own uses :func:`read_body`, the same reading.
Validation errors echo at most a bounded excerpt of the input: :func:`bounded_errors`,
:func:`excerpt`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

import orjson
from starlette.routing import compile_path

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_MAX_JSON_DEPTH = 32
MAX_ECHO_CHARS = 100
"""Longest excerpt of the input an error answer repeats (a field's value, a key)."""
MAX_ERRORS = 20
"""Most errors one validation answer lists; the rest are counted, not listed."""
DRAIN_BYTES = 1024 * 1024
"""How much of a refused body is still read (and dropped) so that its sender, still sending,
gets the 413 on a clean connection; beyond it the connection is closed after the answer."""


class BodyTooLarge(Exception):
    """A body over ``limit``; ``finished``: all of it was read (nothing more will come)."""

    def __init__(self, limit: int, *, finished: bool = False) -> None:
        super().__init__(f"body larger than {limit} bytes")
        self.limit = limit
        self.finished = finished


class JsonTooDeep(ValueError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the JSON is nested deeper than {limit} levels")
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
            raise BodyTooLarge(limit, finished=not message.get("more_body", False))
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# --- JSON shape, at C speed -------------------------------------------------------------
_NOT_BRACKET_OR_QUOTE = bytes(b for b in range(256) if b not in b'"[]{}')
_NOT_SEPARATOR_OR_QUOTE = bytes(b for b in range(256) if b not in b'"[{,:')
_STRING = re.compile(rb'"[^"]*+"?')  # (escapes removed first) an unterminated one runs to the end: linear
_SIGN = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _outside_strings(body: bytes, delete: bytes) -> bytes:
    """The bytes of a JSON text outside its strings, less those in ``delete`` (never the
    quote), in order; each step a C-speed pass. Escaped backslashes go first, then escaped
    quotes: JSON's own left-to-right reading of escapes."""
    if b"\\" in body:
        body = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    kept = body.translate(None, delete)
    return _STRING.sub(b"", kept) if b'"' in kept else kept


def json_depth(body: bytes) -> int:
    """How deep arrays and objects nest in ``body`` (0 for a scalar; malformed JSON gets
    some number its parser will contradict). Linear: ~40 ns per bracket outside strings."""
    brackets = _outside_strings(body, _NOT_BRACKET_OR_QUOTE)
    return max(accumulate(memoryview(brackets.translate(_SIGN)).cast("b")), default=0) if brackets else 0


def check_json_depth(body: bytes, limit: int) -> None:
    """:class:`JsonTooDeep` when arrays and objects in ``body`` nest deeper than ``limit``.
    A body with at most ``limit`` opening brackets passes after two byte counts (the usual
    case); others are measured by :func:`json_depth`."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return
    if json_depth(body) > limit:
        raise JsonTooDeep(limit)


def json_values_bound(body: bytes, *, budget: int) -> int:
    """An upper bound of the values (keys included) a parser builds from ``body``, found
    without building any: separators and opening brackets, counted at C speed. When the
    raw count exceeds ``budget`` (commas in text count too), strings are left out first."""
    def bound(text: bytes) -> int:
        return text.count(b",") + text.count(b":") + text.count(b"[") + text.count(b"{") + 1

    raw = bound(body)
    return raw if raw <= budget else bound(_outside_strings(body, _NOT_SEPARATOR_OR_QUOTE))


def is_json_type(content_type: bytes | str | None) -> bool:
    """A body FastAPI or a route reads as JSON: no Content-Type, or one naming JSON
    (``application/json``, ``application/*+json``, NDJSON and JSON Lines types)."""
    if not content_type:
        return True
    if isinstance(content_type, bytes):
        return b"json" in content_type.partition(b";")[0].lower()
    return "json" in content_type.partition(";")[0].lower()


# --- bounded echoes ---------------------------------------------------------------------
def excerpt(value: Any, limit: int = MAX_ECHO_CHARS) -> Any:
    """``value`` as an error answer may repeat it: numbers, booleans and None as they are,
    anything else as text of at most ``limit`` characters (``…`` marks a cut); a structure
    too deep or odd to render is named by its type only."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, bytes):
        text = value[: limit * 4].decode("utf-8", "replace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = orjson.dumps(value, default=str).decode()
        except (TypeError, orjson.JSONEncodeError, RecursionError):
            text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def bounded_errors(errors: Iterable[Mapping[str, Any]], *, limit: int = MAX_ERRORS) -> list[dict[str, Any]]:
    """pydantic / FastAPI validation errors as an answer may list them: at most ``limit``
    (then one ``too_many_errors`` entry counting the rest), each with ``type``, ``loc``,
    ``msg`` and an :func:`excerpt` of its ``input``; no ``ctx`` or ``url``."""
    out: list[dict[str, Any]] = []
    hidden = 0
    for err in errors:
        if len(out) >= limit:
            hidden += 1
            continue
        entry: dict[str, Any] = {
            "type": err.get("type", "value_error"),
            "loc": [excerpt(part) for part in err.get("loc", ())],
            "msg": excerpt(str(err.get("msg", "invalid")), 4 * MAX_ECHO_CHARS),
        }
        if "input" in err:
            entry["input"] = excerpt(err["input"])
        out.append(entry)
    if hidden:
        out.append({"type": "too_many_errors", "loc": [], "msg": f"{hidden} more errors not listed"})
    return out


# --- the middleware ---------------------------------------------------------------------
def _problem(code: str, detail: str) -> dict:
    return {"detail": detail, "code": code}


@dataclass(frozen=True)
class RouteLimit:
    """A route's own limits: ``max_bytes`` of body; ``checks_json``: the route checks its
    JSON's depth itself, after authenticating (:func:`check_json_depth`, or a parser with a
    nesting limit of its own), so the door does not scan it."""

    max_bytes: int
    checks_json: bool = False


class RequestLimits:
    """413 for a body above its route's limit, 422 for JSON nested deeper than
    ``max_json_depth``, before the app sees the request.

    ``limits`` maps route path templates (``/s/{survey_id}/responses``, as the routes
    declare them) to their own limit (bytes, or a :class:`RouteLimit`); every other path
    has ``default``. ``problem`` shapes the JSON answer from a code (``too_large``,
    ``too_deep``, ``invalid_length``) and a detail text (a service's own error shape). A request without a body (no Content-Length, no Transfer-Encoding)
    passes untouched.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        limits: Mapping[str, int | RouteLimit] | None = None,
        default: int = DEFAULT_MAX_BODY_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        problem: Callable[[str, str], dict] = _problem,
    ) -> None:
        self.app = app
        self.default = RouteLimit(default)
        self.max_json_depth = max_json_depth
        self.problem = problem
        rules = {path: rule if isinstance(rule, RouteLimit) else RouteLimit(rule)
                 for path, rule in (limits or {}).items()}
        self._static = {path: rule for path, rule in rules.items() if "{" not in path}
        self._templates = [(compile_path(path)[0], rule) for path, rule in rules.items() if "{" in path]

    def limit_for(self, path: str) -> RouteLimit:
        """The limits of a request path."""
        rule = self._static.get(path)
        if rule is not None:
            return rule
        for pattern, rule in self._templates:
            if pattern.match(path):
                return rule
        return self.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await send_json(send, 400, self.problem("invalid_length", "invalid Content-Length"),
                                    [(b"connection", b"close")])
                    return
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"content-type":
                content_type = value
        if not declared and not chunked:
            await self.app(scope, receive, send)
            return
        rule = self.limit_for(scope["path"])
        try:
            body = await read_body(receive, limit=rule.max_bytes, declared=declared)
            if body is None:
                return
            if body and not rule.checks_json and is_json_type(content_type):
                check_json_depth(body, self.max_json_depth)
        except BodyTooLarge as exc:
            drained = exc.finished or (
                (declared is None or declared <= DRAIN_BYTES) and await _drain(receive, DRAIN_BYTES))
            await send_json(send, 413, self.problem("too_large", str(exc)),
                            [] if drained else [(b"connection", b"close")])
            return
        except JsonTooDeep as exc:
            await send_json(send, 422, self.problem("too_deep", str(exc)))
            return
        delivered = False

        async def replay() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _drain(receive: Receive, budget: int) -> bool:
    """Read and drop the rest of a body, at most ``budget`` bytes; True when it all came."""
    while budget >= 0:
        message = await receive()
        if message["type"] == "http.disconnect":
            return False
        budget -= len(message.get("body", b""))
        if not message.get("more_body", False):
            return budget >= 0
    return False
