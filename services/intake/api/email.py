"""``POST /v1/email``: a raw RFC 822 message forwarded from an existing mailbox."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.intake.api.deps import ApiKey
from services.intake.api.errors import RETRY_AFTER_UNAVAILABLE_S, documented, error_response, json_response
from services.intake.email.metrics import emails_counter
from services.intake.email.parse import FEEDBACK, REJECTED
from services.intake.email.service import DUPLICATE
from services.intake.email.worker import ParserBusy
from shared.contracts import Channel

router = APIRouter(tags=["email"])

_SAMPLE = (
    "From: =?UTF-8?B?546L5bu65Zu9?= <wang@example.com>\r\nTo: feedback@example.com\r\n"
    "Subject: =?UTF-8?B?5oqV6K+J?=\r\nMessage-ID: <1@example.com>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    "排队两个小时，态度很差。\r\n"
)


@router.post(
    "/v1/email",
    status_code=202,
    summary="Submit a raw email (message/rfc822)",
    description=(
        "Forward a customer's email exactly as received (headers and MIME body, any charset). Intake decodes it "
        "like a mail client, strips quoted replies and signatures, keeps attachment names and sizes (not their "
        "content) and publishes it as `channel: email` feedback. Each `Message-ID` is accepted once per sender.\n\n"
        "* `202 {status: accepted, id}`: it is feedback, durably recorded.\n"
        "* `200 {status: duplicate, id}`: seen before; `id` is the first delivery's feedback id (null if it was "
        "not feedback), `first_status` says what it became.\n"
        "* `200 {status: auto_reply, reason}`: an auto-reply or bounce; recorded, not feedback.\n"
        "* `422 {status: rejected, detail}`: cannot be feedback (no sender, no text, not a mail); recorded. "
        "Sending it again answers 422 again (`status: duplicate, first_status: rejected`).\n"
        "* `415`: the body is not sent as `message/rfc822`."
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}, "example": _SAMPLE}},
        }
    },
    responses={
        202: {"description": "Accepted as feedback.", "content": {"application/json": {"example": {"status": "accepted", "id": "…", "message_id": "<1@example.com>"}}}},
        200: {"description": "A duplicate or an auto-reply; recorded, nothing new published."},
        415: {"description": "Content-Type is not message/rfc822."},
        **documented(401, 403, 413, 422, 429, 503),
    },
)
async def submit_email(request: Request, principal: ApiKey) -> Response:
    principal.require_channel(Channel.EMAIL)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "message/rfc822":
        return error_response(415, "send the raw message with Content-Type: message/rfc822")
    raw = await request.body()  # bounded while reading by the RequestLimits middleware (413 above the limit)
    runtime = request.app.state.runtime
    try:
        outcome = await runtime.email_channel.receive(raw, pool=runtime.pool, via="http", source=principal.name)
    except ParserBusy:
        return error_response(503, "every mail parser is busy; retry later",
                              headers={"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)})
    emails_counter(runtime).labels("http", outcome.status).inc()
    body: dict[str, Any] = {"status": outcome.status, "id": outcome.feedback_id, "message_id": outcome.message_id}
    if outcome.reason:
        body["reason"] = outcome.reason
    if outcome.status == DUPLICATE:
        body["first_status"] = outcome.first_status
    if outcome.status == FEEDBACK:
        return json_response(202, body)
    if REJECTED in (outcome.status, outcome.first_status):  # a resent rejected mail is still rejected
        return json_response(422, {"detail": f"not accepted as feedback: {outcome.reason}", "errors": [], **body})
    return json_response(200, body)  # an auto-reply, or a duplicate of accepted mail or of an auto-reply
