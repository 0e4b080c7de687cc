"""The checks every API-key request goes through, and ``POST /v1/feedback`` itself,
written once for the FastAPI route and the hot path.

:func:`authorize` is the one check of an API key (the ``ApiKey`` dependency of
every route and the hot path call it). :func:`submit_feedback` is the whole of
``POST /v1/feedback`` from headers and body to the answer; the documented
FastAPI route and :class:`~services.intake.api.hot_path.FeedbackHotPath` only
carry its inputs in and its answer out, so the two cannot answer differently.

Order of checks: API key (401), browser origin (403), rate limit (429) —
:func:`authorize`, before anything of the body is parsed — then
``Content-Type`` (415 unless JSON), ``Idempotency-Key`` and body together
(422, reserved fields included: :func:`reserved_field_errors`), channel (403),
durability (202, or 503 when nothing could store it).
"""

from __future__ import annotations

from pydantic import ValidationError

from services.intake import service
from services.intake.api.errors import (
    RETRY_AFTER_UNAVAILABLE_S,
    UNAVAILABLE_DETAIL,
    Answer,
    field_errors,
    invalid_detail,
    refusal,
)
from services.intake.keys import AuthError, KeyStore, Principal
from shared.contracts import FeedbackIn
from shared.errors import NotDurable

NOT_JSON_DETAIL = "send the feedback as JSON (Content-Type: application/json)"

async def authorize(keys: KeyStore, *, api_key: str | None, origin: str | None, cost: int = 1) -> Principal:
    """The principal behind ``X-API-Key``: raises :class:`~services.intake.keys.MissingKey` /
    :class:`~services.intake.keys.UnknownKey` (401), :class:`~services.intake.keys.Forbidden`
    (403) for a browser ``Origin`` the key is not for, and
    :class:`~services.intake.keys.RateLimited` (429) after taking ``cost`` from its rate limit.
    No database round trip. The channel is the caller's check (``principal.require_channel``,
    403) once it knows the channel."""
    principal = await keys.authenticate(api_key)
    principal.require_origin(origin)
    principal.charge(cost)
    return principal


RECOVERY_FIELD = "survey.recovery_for_alert_id"


def reserved_field_errors(feedback: FeedbackIn) -> list[dict[str, str]]:
    """Fields no API key may send (422): ``survey.recovery_for_alert_id`` claims the feedback
    answers the recovery survey of an alert, which alerts honours by reopening or closing it;
    only Keymoment's own survey service sets it (on its own events, which alerts checks)."""
    if feedback.survey is not None and feedback.survey.recovery_for_alert_id is not None:
        return [{"path": RECOVERY_FIELD, "type": "reserved_field",
                 "message": "set only by Keymoment's survey service; an API key may not send it"}]
    return []


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<anything>+json`` (parameters ignored)."""
    if not content_type:
        return False
    mime = content_type.partition(";")[0].strip().lower()
    return mime == "application/json" or (mime.startswith("application/") and mime.endswith("+json"))


async def submit_feedback(
    ctx: service.Context,
    *,
    api_key: str | None,
    origin: str | None,
    idempotency_key: str | None,
    content_type: str | None,
    body: bytes,
) -> Answer:
    """``POST /v1/feedback``: the answer to these headers and this body."""
    try:
        principal = await authorize(ctx.keys, api_key=api_key, origin=origin)
        if not is_json(content_type):
            return 415, {"detail": NOT_JSON_DETAIL, "errors": []}, {}
        errors: list[dict[str, str]] = []
        if idempotency_key is not None and len(idempotency_key) > service.MAX_IDEMPOTENCY_KEY:
            errors.append({"path": "header.Idempotency-Key", "type": "string_too_long",
                           "message": f"String should have at most {service.MAX_IDEMPOTENCY_KEY} characters"})
        try:
            feedback = FeedbackIn.model_validate_json(body)
        except ValidationError as exc:
            errors += field_errors(exc.errors(include_url=False, include_input=False), strip=())
        else:
            errors += reserved_field_errors(feedback)
        if errors:
            return 422, {"detail": invalid_detail(errors), "errors": errors}, {}
        principal.require_channel(feedback.channel)
        feedback_id = await service.accept(feedback, principal=principal, idempotency_key=idempotency_key, sink=ctx.sink)
    except AuthError as exc:
        return refusal(exc)
    except NotDurable:
        return 503, {"detail": UNAVAILABLE_DETAIL, "errors": []}, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}
    return 202, {"id": feedback_id}, {}
