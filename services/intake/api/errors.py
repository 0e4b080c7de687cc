"""One error shape for every intake answer: ``{"detail": str, "errors": [...]}``
where each error names the ``path`` of the bad field (``rating.value``,
``customer.email``, ``colour`` for an unknown field), a ``message`` and a
machine-readable ``type``. Batch results use the same error objects per item."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.responses import Response

from services.intake.keys import AuthError, RateLimited
from shared.errors import NotDurable
from shared.http import MAX_ECHO_CHARS, MAX_ERRORS, excerpt

RETRY_AFTER_UNAVAILABLE_S = 5
UNAVAILABLE_DETAIL = ("feedback cannot be stored right now (broker and database unavailable); nothing was accepted, "
                      "retry later")


class FieldError(BaseModel):
    path: str = Field(description="Dotted path of the bad field inside the feedback (list indexes as numbers); "
                      "empty for the body as a whole.", examples=["rating.value"])
    message: str = Field(examples=["mot rating must be between -3 and 3, got 5"])
    type: str = Field(description="Machine-readable kind, e.g. missing, extra_forbidden, value_error.",
                      examples=["value_error"])


class ErrorBody(BaseModel):
    detail: str = Field(examples=["the feedback is invalid"])
    errors: list[FieldError] = Field(default_factory=list)


def _path(loc: Sequence[Any]) -> str:
    return ".".join(str(part) for part in loc)


def field_errors(errors: Iterable[dict[str, Any]], *, strip: tuple[str, ...] = ("body",)) -> list[dict[str, str]]:
    """pydantic/FastAPI error dicts as ``FieldError`` dicts, never repeating more of the input
    than a bounded excerpt (a key sent as a field name is cut to :data:`~shared.http.MAX_ECHO_CHARS`),
    at most :data:`~shared.http.MAX_ERRORS` of them (then one ``too_many_errors`` entry)."""
    out = []
    hidden = 0
    for err in errors:
        if len(out) >= MAX_ERRORS:
            hidden += 1
            continue
        loc = [excerpt(part) for part in err.get("loc", ())]
        if loc and loc[0] in strip:
            loc = loc[1:]
        kind = err.get("type", "value_error")
        if kind == "extra_forbidden" and loc:
            message = f"unknown field '{loc[-1]}'"
        else:
            message = str(err.get("msg", "invalid"))
            if message.startswith("Value error, "):
                message = message[len("Value error, "):]
        out.append({"path": _path(loc), "message": excerpt(message, 4 * MAX_ECHO_CHARS), "type": kind})
    if hidden:
        out.append({"path": "", "message": f"{hidden} more errors not listed", "type": "too_many_errors"})
    return out


def invalid_detail(errors: Sequence[object]) -> str:
    return f"the request is invalid ({len(errors)} error{'s' if len(errors) != 1 else ''})"


def retry_after(exc: RateLimited) -> str:
    """The ``Retry-After`` value (whole seconds, at least 1) of a rate-limit refusal."""
    return str(max(1, math.ceil(exc.retry_after)))


Answer = tuple[int, dict[str, Any], dict[str, str]]
"""``(status, JSON body, headers)`` of an answer."""


def refusal(exc: AuthError) -> Answer:
    """The answer to a refused key: 401, 403, or 429 with ``Retry-After``."""
    headers = {"Retry-After": retry_after(exc)} if isinstance(exc, RateLimited) else {}
    return exc.status, {"detail": str(exc), "errors": []}, headers


def json_response(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(status: int, detail: str, errors: list[dict[str, str]] | None = None,
                   headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"detail": detail, "errors": errors or []}, headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        errors = field_errors(exc.errors())
        return error_response(422, invalid_detail(errors), errors)

    @app.exception_handler(AuthError)
    async def _auth(_: Request, exc: AuthError) -> Response:
        return json_response(*refusal(exc))

    @app.exception_handler(NotDurable)
    async def _unavailable(_: Request, exc: NotDurable) -> Response:
        return error_response(503, UNAVAILABLE_DETAIL, headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)})


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer."""
    text = {
        401: "Missing, unknown or revoked API key.",
        403: "The key may not submit this channel, or not from this browser origin.",
        413: "Body too large.",
        415: "The body is not sent with the content type the route reads (JSON: `application/json`).",
        422: "Invalid request: every bad field is listed with its path.",
        429: "The key's rate limit is exhausted; retry after `Retry-After` seconds.",
        503: "Neither the broker nor the database can take the feedback; nothing was accepted. "
             "Retry after `Retry-After` seconds.",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}
