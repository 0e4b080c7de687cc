"""The customer-facing survey pages: ``GET /s/{id}`` and ``POST /s/{id}/responses``.

Browsers post the form (``application/x-www-form-urlencoded``; answers as
``q.<question id>``, the link token as ``t``) and get HTML back; API clients
post JSON (:class:`~services.survey.schemas.ResponseIn`) and get JSON back.
GET never records anything: mail scanners open links.
"""

from __future__ import annotations

import logging
import uuid
from urllib.parse import parse_qsl, urlencode

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError

from services.survey import repository, service, tokens
from services.survey.api.deps import Ctx, Pool
from services.survey.pages import pick_language, render_form, render_message
from services.survey.schemas import Issue, Lang, ResponseIn, SurveyDefinition, validate_answers
from services.survey.service import Context
from shared.http import bounded_errors

logger = logging.getLogger(__name__)

router = APIRouter(tags=["responses"])

MAX_BODY_BYTES = 256 * 1024
"""Largest answer body (the service's request limits answer 413 ``too_large`` above it)."""
# Links carry a token: never leak it in a Referer, never cache the page, no third-party anything.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError)


class ProblemOut(BaseModel):
    """A refused submission, as JSON (a form post gets the same as a bilingual page)."""

    detail: str
    code: str | None = None
    response_id: str | None = None


class InvalidOut(BaseModel):
    """Answers that do not fit the survey (each issue names its question) or a body that is not a response."""

    detail: list[dict]


class Submitted(BaseModel):
    response_id: str
    feedback_ids: list[str]


_HTML = {"text/html": {}}
PAGE_RESPONSES: dict[int | str, dict] = {
    403: {"content": _HTML, "description": "The survey needs a personal link, or the link is not valid."},
    404: {"content": _HTML, "description": "No such survey, or the link's request is unknown."},
    410: {"content": _HTML, "description": "The link has expired."},
}
SUBMIT_RESPONSES: dict[int | str, dict] = {
    200: {"content": _HTML, "description": "A form post was recorded: the thank-you page."},
    201: {"model": Submitted, "description": "A JSON submission was recorded."},
    400: {"content": _HTML, "description": "A form body that is not UTF-8 form data."},
    403: {"model": ProblemOut, "content": _HTML, "description": "A personal link is needed, or this one is not valid."},
    404: {"model": ProblemOut, "content": _HTML, "description": "No such survey, or the link's request is unknown."},
    409: {"model": ProblemOut, "content": _HTML, "description": "Already answered (`response_id`)."},
    410: {"model": ProblemOut, "content": _HTML, "description": "The link has expired."},
    413: {"model": ProblemOut, "description": f"Body over {MAX_BODY_BYTES} bytes."},
    415: {"model": ProblemOut, "description": "Neither form data nor JSON."},
    422: {"model": InvalidOut, "content": _HTML, "description": "Answers that do not fit the survey (the form again, "
          "with the issues, for a form post)."},
    503: {"model": ProblemOut, "content": _HTML, "description": "The database is unavailable; nothing was recorded."},
}
SUBMIT_BODY = {"required": True, "content": {
    "application/json": {"schema": ResponseIn.model_json_schema()},
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "description": "q.<question id> per answer, t (the link token), lang, submission_id.",
        "additionalProperties": {"type": "string"}}},
}}


def _page(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=PAGE_HEADERS)


def _problem(kind: str, status_code: int, lang: Lang, *, as_json: bool, **extra: object) -> Response:
    if as_json:
        return JSONResponse({"detail": kind.replace("_", " "), "code": kind, **extra}, status_code=status_code)
    return _page(render_message(kind, lang), status_code)


def _verify(ctx: Context, survey: SurveyDefinition, token: str | None) -> tuple[tokens.LinkClaims | None, tuple[str, int] | None]:
    """The link's claims, or the problem page to show (kind, status)."""
    if not token:
        return None, (("link_required", 403) if survey.access == "link" else None)
    try:
        return tokens.verify(ctx.links, token, survey_id=survey.id), None
    except tokens.TokenExpired:
        return None, ("expired", 410)
    except tokens.TokenError:
        return None, ("invalid_link", 403)


def _switch_url(survey_id: str, token: str | None, lang: Lang) -> str:
    params = {"lang": "en" if lang == "zh-CN" else "zh-CN"}
    if token:
        params["t"] = token
    return f"/s/{survey_id}?{urlencode(params)}"


@router.get("/s/{survey_id}", response_class=HTMLResponse, summary="The survey form (bilingual HTML)",
            responses=PAGE_RESPONSES)
async def survey_page(
    survey_id: str, request: Request, pool: Pool, ctx: Ctx, t: str | None = None, lang: str | None = None
) -> Response:
    accept = request.headers.get("accept-language")
    stored = await repository.get_survey(pool, survey_id)
    if stored is None:
        return _page(render_message("not_found", pick_language(lang, None, accept)), 404)
    survey = stored.definition
    claims, problem = _verify(ctx, survey, t)
    link_request = None
    if claims is not None:
        async with pool.acquire() as conn:
            link_request = await repository.get_request(conn, claims.request_id)
        if link_request is None or link_request.survey_id != survey.id:
            problem = ("invalid_link", 404)
    language = pick_language(lang, link_request.language if link_request else None, accept)
    if problem:
        return _page(render_message(problem[0], language), problem[1])
    if claims is not None and await repository.response_for_request(pool, claims.request_id):
        return _page(render_message("already_answered", language))
    # ?q.<id>=<value> preselects an answer (the faces in the invitation email); only valid values are kept.
    prefill, _ = validate_answers(
        survey, {k[2:]: v for k, v in request.query_params.items() if k.startswith("q.") and survey.question(k[2:])}
    )
    return _page(
        render_form(
            survey, lang=language, action=f"/s/{survey.id}/responses", switch_url=_switch_url(survey.id, t, language),
            token=t, submission_id=uuid.uuid4().hex, values=prefill,
        )
    )


@router.post("/s/{survey_id}/responses", summary="Submit answers (form post or JSON)", status_code=201,
             response_model=None, responses=SUBMIT_RESPONSES, openapi_extra={"requestBody": SUBMIT_BODY})
async def submit_response(
    survey_id: str, request: Request, pool: Pool, ctx: Ctx
) -> Response:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    as_json = content_type == "application/json"
    lang_hint = pick_language(request.query_params.get("lang"), None, request.headers.get("accept-language"))
    if not as_json and content_type != "application/x-www-form-urlencoded":
        return JSONResponse(
            {"detail": "send application/x-www-form-urlencoded (an HTML form) or application/json"}, status_code=415
        )
    body = await request.body()  # at most MAX_BODY_BYTES: the service's request limits refuse more (413 too_large)
    stored = await repository.get_survey(pool, survey_id)
    if stored is None:
        return _problem("not_found", 404, lang_hint, as_json=as_json)
    survey = stored.definition

    if as_json:
        try:
            data = ResponseIn.model_validate_json(body)
        except ValidationError as exc:
            return JSONResponse({"detail": bounded_errors(exc.errors(include_url=False))}, status_code=422)
        raw, token, language, submission_id = data.answers, data.token, data.language, data.submission_id
    else:
        try:
            fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200, strict_parsing=False))
        except (UnicodeDecodeError, ValueError):
            return _page(render_message("invalid_link", lang_hint), 400)
        raw = {k[2:]: v for k, v in fields.items() if k.startswith("q.")}
        token = fields.get("t") or request.query_params.get("t") or None
        language = pick_language(fields.get("lang"), None, request.headers.get("accept-language"))
        sid = fields.get("submission_id", "")
        submission_id = sid if 8 <= len(sid) <= 64 and sid.replace("-", "").replace("_", "").isalnum() and sid.isascii() else None
    page_lang: Lang = pick_language(language, None, request.headers.get("accept-language"))

    metrics = ctx.metrics
    claims, problem = _verify(ctx, survey, token)
    if problem:
        metrics.responses.labels(survey.id, "invalid").inc()
        return _problem(problem[0], problem[1], page_lang, as_json=as_json)

    answers, issues = validate_answers(survey, raw)
    if issues:
        metrics.responses.labels(survey.id, "invalid").inc()
        return _invalid(survey, issues, raw, token=token, submission_id=submission_id, lang=page_lang, as_json=as_json)

    try:
        async with pool.acquire() as conn, conn.transaction():
            result = await service.submit_response(
                ctx,
                conn,
                survey=survey,
                answers=answers,
                request_id=claims.request_id if claims else None,
                submission_id=submission_id,
                language=language,
            )
    except service.AlreadyAnswered as exc:
        metrics.responses.labels(survey.id, "already_answered").inc()
        return _problem("already_answered", 409, page_lang, as_json=as_json, response_id=exc.response_id)
    except service.UnknownRequest:
        metrics.responses.labels(survey.id, "invalid").inc()
        return _problem("invalid_link", 404, page_lang, as_json=as_json)
    except _UNAVAILABLE as exc:
        logger.warning("response not stored: database unavailable", extra={"survey_id": survey.id, "error": repr(exc)})
        return _problem("unavailable", 503, page_lang, as_json=as_json)
    metrics.responses.labels(survey.id, "accepted").inc()
    metrics.feedback_events.labels(survey.id).inc(len(result.feedback_ids))
    if as_json:
        return JSONResponse({"response_id": result.response_id, "feedback_ids": result.feedback_ids}, status_code=201)
    return _page(render_message("thanks", page_lang, survey=survey))


def _invalid(
    survey: SurveyDefinition, issues: list[Issue], raw: dict, *, token: str | None, submission_id: str | None,
    lang: Lang, as_json: bool,
) -> Response:
    if as_json:
        return JSONResponse({"detail": [i.as_dict() for i in issues]}, status_code=422)
    return _page(
        render_form(
            survey, lang=lang, action=f"/s/{survey.id}/responses", switch_url=_switch_url(survey.id, token, lang),
            token=token, submission_id=submission_id or uuid.uuid4().hex, values=raw, issues=issues,
        ),
        422,
    )
