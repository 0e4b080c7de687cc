"""``POST /v1/feedback`` and ``POST /v1/feedback:batch``: thin routes over
:mod:`services.intake.service`."""

from __future__ import annotations

import re
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, FastAPI, Header, Request, Security
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, ValidationError
from starlette.responses import Response

from services.intake import service
from services.intake.api.deps import ApiKey, Ctx, Sink, api_key_header
from services.intake.api.errors import FieldError, documented, error_response, field_errors, json_response
from services.intake.api import submit
from shared.contracts import FeedbackIn
from shared.http import json_values_bound

router = APIRouter(tags=["feedback"])

MAX_IDEMPOTENCY_KEY = service.MAX_IDEMPOTENCY_KEY
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines")

EXAMPLES = {
    "kiosk": {
        "summary": "Kiosk tap (MOT face) with a comment",
        "value": {"channel": "kiosk", "rating": {"scale": "mot", "value": -2}, "text": "排队太久了，收银台只开了一个",
                  "location": "store-12", "touchpoint": "checkout", "kiosk": {"device_id": "kiosk-12-exit"}},
    },
    "web": {
        "summary": "Web contact form",
        "value": {"channel": "web", "text": "The refund took three weeks and nobody answered my emails.",
                  "rating": {"scale": "csat", "value": 1},
                  "customer": {"id": "C-1029", "email": "li.wei@example.com"},
                  "touchpoint": "refund", "occurred_at": "2026-05-01T09:30:00+08:00",
                  "web": {"page_url": "https://example.com/contact", "form_id": "contact-v2"},
                  "attributes": {"order_id": "SO-55812"}},
    },
    "phone": {
        "summary": "Call-centre note",
        "value": {"channel": "phone", "text": "客户反映航班延误后没有收到任何通知，要求补偿。", "language": "zh-CN",
                  "touchpoint": "call centre", "phone": {"agent_id": "A-207", "call_id": "CALL-88123",
                                                          "duration_seconds": 412, "direction": "inbound"}},
    },
}


class Accepted(BaseModel):
    id: str = Field(description="The feedback's id (also the event id on `feedback.received.v1`).",
                    examples=["9b2f8f6e-4a43-5c1e-9d0f-2f1b8a7c6d51"])


class ItemResult(BaseModel):
    index: int = Field(description="0-based position of the item in the batch (NDJSON: among non-empty lines).")
    id: str | None = Field(None, description="Set when the item was accepted.")
    errors: list[FieldError] | None = Field(None, description="Set when the item was rejected.")


class BatchResult(BaseModel):
    accepted: int
    rejected: int
    results: list[ItemResult]


# Documented here, checked by submit.submit_feedback (a FastAPI constraint would answer 422 before the key is checked).
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        json_schema_extra={"maxLength": MAX_IDEMPOTENCY_KEY},
        description="Any unique string per feedback (e.g. a UUID the client made). A retry with the same key "
        "returns the same id and produces no second event.",
    ),
]

_SINGLE_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/FeedbackIn"}, "examples": EXAMPLES}},
}


@router.post(
    "/v1/feedback",
    status_code=202,
    summary="Submit one feedback",
    response_model=Accepted,
    responses=documented(401, 403, 413, 415, 422, 429, 503),
    openapi_extra={"requestBody": _SINGLE_BODY},
    description="Accepts one piece of feedback and answers `202 {\"id\"}` once it is durable (acknowledged by "
    "Kafka or committed to intake's outbox). Bodies are JSON (`Content-Type: application/json`, 415 otherwise) "
    "of at most 64 KiB. Unknown fields are rejected (422 names them). `language` is detected (zh, en, ja, ko) "
    "when absent.",
)
async def submit_feedback(
    request: Request,
    ctx: Ctx,
    api_key: Annotated[str | None, Security(api_key_header)],
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """The reference route of ``POST /v1/feedback``; the hot path answers it in production
    (:mod:`services.intake.api.hot_path`), both through :func:`submit.submit_feedback`."""
    status, payload, headers = await submit.submit_feedback(
        ctx, api_key=api_key, origin=request.headers.get("origin"), idempotency_key=idempotency_key,
        content_type=request.headers.get("content-type"), body=await request.body(),
    )
    return json_response(status, payload, headers)


def document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add models to the app's OpenAPI components, as FastAPI would render them as bodies:
    the bodies routes read themselves (referred to as ``#/components/schemas/<Model>``)."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            readers = [APIRoute(f"/{m.__name__}", _body_of(m), methods=["POST"]) for m in models]
            rendered = get_openapi(title=app.title, version=app.version, routes=readers)
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, definition in rendered.get("components", {}).get("schemas", {}).items():
                components.setdefault(name, definition)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _body_of(model: type[BaseModel]) -> Any:
    async def read(body: Any) -> None:  # never served: only rendered into the schema
        pass

    read.__annotations__ = {"body": Annotated[model, Body()], "return": None}
    return read


_BATCH_BODY = {
    "required": True,
    "description": "A JSON array of feedback objects, or NDJSON (one object per line) with "
    "`Content-Type: application/x-ndjson`. Each item may carry `idempotency_key`. At most 1,000 items, "
    "64 KiB per item and 8 MiB in total.",
    "content": {
        "application/json": {
            "schema": {"type": "array", "maxItems": 1000, "items": {"$ref": "#/components/schemas/FeedbackIn"}},
            "example": [
                {"channel": "suggestion_box", "text": "洗手间很干净", "location": "branch-3",
                 "idempotency_key": "cards-2026-05-01:17"},
                {"channel": "kiosk", "rating": {"scale": "mot", "value": 3}, "location": "store-12"},
            ],
        },
        "application/x-ndjson": {"schema": {"type": "string"},
                                 "example": '{"channel":"kiosk","rating":{"scale":"mot","value":2}}\n'},
    },
}


VALUES_PER_ITEM = 256
"""JSON values (keys included) a batch may hold per item allowed, on average, before it is
refused unparsed: a body of millions of tiny items is never built (feedback has a few dozen)."""
_LINE = re.compile(rb"\S[^\n]*")  # an NDJSON line from its first non-blank byte: blank lines skipped in C


def _split(body: bytes, content_type: str, *, max_item: int, max_items: int
           ) -> tuple[list[Any], dict[int, list[dict[str, str]]]] | Response:
    """Items (decoded JSON) and per-index decoding errors, or an error response for the whole
    body. Nothing is parsed when the body holds more values than ``max_items`` items may (a
    count of separators at C speed), and parsing stops at item ``max_items + 1``; orjson's own
    nesting limit (1024) bounds the rest."""
    budget = max_items * VALUES_PER_ITEM
    if json_values_bound(body, budget=budget) > budget:
        return _too_many(max_items, f"more JSON values than {budget}")
    errors: dict[int, list[dict[str, str]]] = {}
    if content_type.split(";")[0].strip().lower() in NDJSON_TYPES:
        items: list[Any] = []
        for match in _LINE.finditer(body):
            index = len(items)
            if index == max_items:
                return _too_many(max_items, "more")
            line = match.group()
            if len(line) > max_item:
                items.append(None)
                errors[index] = [{"path": "", "message": f"item larger than {max_item} bytes", "type": "too_large"}]
                continue
            try:
                items.append(orjson.loads(line))
            except orjson.JSONDecodeError as exc:
                items.append(None)
                errors[index] = [{"path": "", "message": f"invalid JSON: {exc}", "type": "json_invalid"}]
        return items, errors
    try:
        items = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return error_response(422, "the body is not valid JSON", [{"path": "", "message": str(exc), "type": "json_invalid"}])
    if not isinstance(items, list):
        return error_response(422, "a batch is a JSON array of feedback (or NDJSON)",
                              [{"path": "", "message": "expected an array", "type": "list_type"}])
    if len(items) > max_items:
        return _too_many(max_items, str(len(items)))
    if len(body) > max_item:  # only then can a single item exceed the limit
        for index, item in enumerate(items):
            if len(orjson.dumps(item)) > max_item:
                items[index] = None
                errors[index] = [{"path": "", "message": f"item larger than {max_item} bytes", "type": "too_large"}]
    return items, errors


def _too_many(max_items: int, got: str) -> Response:
    return error_response(413, f"a batch holds at most {max_items} items, got {got}")


@router.post(
    "/v1/feedback:batch",
    summary="Submit up to 1,000 feedback at once",
    response_model=BatchResult,
    responses=documented(401, 403, 413, 422, 429, 503),
    openapi_extra={"requestBody": _BATCH_BODY},
    description="Validates every item on its own: valid items are accepted (durably, all in one go) even when "
    "others fail. The answer lists each item's `id` or its `errors` by `index`. Each item counts against the "
    "key's rate limit. 413 when the body exceeds 8 MiB or holds more than 1,000 items; 503 means nothing of "
    "the batch was accepted.",
)
async def submit_batch(request: Request, principal: ApiKey, sink: Sink, ctx: Ctx) -> Response:
    settings = ctx.settings
    body = await request.body()  # at most INTAKE_MAX_BATCH_BYTES (the request limits), read after the key is checked
    split = _split(body, request.headers.get("content-type", "application/json"),
                   max_item=settings.intake_max_body_bytes, max_items=settings.intake_max_batch_items)
    if isinstance(split, Response):
        return split
    items, errors = split
    if len(items) > 1:
        principal.charge(len(items) - 1)  # the dependency took one already
    valid: list[FeedbackIn] = []
    valid_index: list[int] = []
    keys: list[str | None] = []
    for index, item in enumerate(items):
        if index in errors:
            continue
        if not isinstance(item, dict):
            errors[index] = [{"path": "", "message": "expected a JSON object", "type": "dict_type"}]
            continue
        key = item.pop("idempotency_key", None)
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= MAX_IDEMPOTENCY_KEY):
            errors[index] = [{"path": "idempotency_key", "type": "string_type",
                              "message": f"a string of 1..{MAX_IDEMPOTENCY_KEY} characters"}]
            continue
        try:
            feedback = FeedbackIn.model_validate(item)
        except ValidationError as exc:
            errors[index] = field_errors(exc.errors(include_url=False, include_input=False))
            continue
        if reserved := submit.reserved_field_errors(feedback):
            errors[index] = reserved
            continue
        if not principal.may_use(feedback.channel):
            errors[index] = [{"path": "channel", "type": "channel_not_allowed",
                              "message": f"API key '{principal.name}' may not submit channel '{feedback.channel.value}'"}]
            continue
        valid.append(feedback)
        valid_index.append(index)
        keys.append(key)
    ids = await service.accept_many(valid, principal=principal, idempotency_keys=keys, sink=sink)
    accepted = dict(zip(valid_index, ids, strict=True))
    results = [
        {"index": i, "id": accepted[i]} if i in accepted else {"index": i, "errors": errors[i]}
        for i in range(len(items))
    ]
    return json_response(200, {"accepted": len(ids), "rejected": len(items) - len(ids), "results": results})
