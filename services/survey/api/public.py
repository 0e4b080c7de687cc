"""The customer-facing survey pages: ``GET /s/{id}``, ``POST /s/{id}/responses``, ``POST /s/{id}/draft``.

Browsers post the form (``application/x-www-form-urlencoded``; answers as
``q.<question id>``, the link token as ``t``, the version shown as ``v``) and get
HTML back; API clients post JSON (:class:`~services.survey.schemas.ResponseIn`) and
get JSON back. GET records no answer (mail scanners open links); the first GET of a
personal link is its invitation's ``opened`` step.

Limits: every request of a client address is counted (``api/limits.py``); a personal
link's requests are counted per link, a public survey's answers and drafts per survey
(429 with ``Retry-After``); a body is read up to ``MAX_BODY_BYTES`` and every answer
is bounded (a text question's ``max_length``, a choice's options, a scale's range).

A personal link answers once: a second submit gets **409 Conflict** (the page says
"already answered"; JSON carries ``code: already_answered`` and the stored
``response_id``, so a client retrying after a lost answer knows it was stored). 409
rather than 200 because nothing of the second submit is stored: a client must not
take it for a success of its own answers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import asyncpg
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError

from services.survey import repository, service, tokens
from services.survey.api.deps import Ctx, Pool
from services.survey.api.limits import too_many
from services.survey.inviting import funnel_step
from services.survey.pages import SCRIPT_PATH, pick_language, render_form, render_message
from services.survey.schemas import (
    SLUG,
    Issue,
    Lang,
    ResponseIn,
    SurveyDefinition,
    partial_answers,
    validate_answers,
)
from services.survey.service import Context
from shared.contracts import FunnelStep
from shared.http import bounded_errors

logger = logging.getLogger(__name__)

router = APIRouter(tags=["responses"])

MAX_BODY_BYTES = 256 * 1024
"""Largest answer or draft body (the service's request limits answer 413 ``too_large`` above it)."""
SCRIPT = (Path(__file__).resolve().parent.parent / "static" / "survey.js").read_bytes()
# Links carry a token: never leak it in a Referer, never cache the page, no third-party anything.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "script-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.TooManyConnectionsError, asyncpg.CannotConnectNowError)
_SUBMISSION = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_SURVEY_ID = re.compile(SLUG)


def _cookie(survey_id: str) -> str:
    """The cookie holding a browser's submission id for a public survey (its partial answers)."""
    return f"km_s_{survey_id.replace('-', '_')}"


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
    version: int


_HTML = {"text/html": {}}
PAGE_RESPONSES: dict[int | str, dict] = {
    403: {"content": _HTML, "description": "The survey needs a personal link, or the link is not valid."},
    404: {"content": _HTML, "description": "No such survey, or the link's request is unknown."},
    410: {"content": _HTML, "description": "The link has expired."},
    429: {"content": _HTML, "description": "Too many requests from this client or link (`Retry-After`)."},
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
    429: {"model": ProblemOut, "content": _HTML, "description": "Too many requests from this client, this link or "
          "to this public survey (`Retry-After`)."},
    503: {"model": ProblemOut, "content": _HTML, "description": "The database is unavailable; nothing was recorded."},
}
DRAFT_RESPONSES: dict[int | str, dict] = {
    204: {"description": "Kept (a JSON post, or the page's script: `X-Requested-With: fetch`)."},
    303: {"description": "Kept (a form post): back to the form, with a note."},
    409: {"description": "Not kept: the link or this submission was answered already."},
    **{code: SUBMIT_RESPONSES[code] for code in (403, 404, 410, 413, 415, 422, 429)},
}
SUBMIT_BODY = {"required": True, "content": {
    "application/json": {"schema": ResponseIn.model_json_schema()},
    "application/x-www-form-urlencoded": {"schema": {
        "type": "object", "description": "q.<question id> per answer, t (the link token), v (the version shown), "
                                         "lang, submission_id.",
        "additionalProperties": {"type": "string"}}},
}}


def _page(content: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(content, status_code=status_code, headers=PAGE_HEADERS)


def _problem(kind: str, status_code: int, lang: Lang, *, as_json: bool, **extra: object) -> Response:
    if as_json:
        return JSONResponse({"detail": kind.replace("_", " "), "code": kind, **extra}, status_code=status_code)
    return _page(render_message(kind, lang), status_code)


def _limit(ctx: Context, request: Request, *, survey: SurveyDefinition, claims: tokens.LinkClaims | None,
           submitting: bool) -> Response | None:
    """The per-link limit of a personal link, or (answers and drafts) the per-survey limit of a
    public survey: a 429 to answer instead, or None."""
    if claims is not None:
        wait = ctx.limits.links.take(claims.request_id)
        return too_many(ctx.metrics, request, "link", wait) if wait else None
    if submitting:
        wait = ctx.limits.surveys.take(survey.id)
        return too_many(ctx.metrics, request, "survey", wait) if wait else None
    return None


def _verify(ctx: Context, survey: SurveyDefinition, token: str | None) -> tuple[tokens.LinkClaims | None, tuple[str, int] | None]:
    """The link's claims, or the problem page to show (kind, status)."""
    if not token:
        return None, (("link_required", 403) if survey.access == "link" else None)
    try:
        return tokens.verify(ctx.links, token, survey_id=survey.id, now=ctx.clock.now()), None
    except tokens.TokenExpired:
        return None, ("expired", 410)
    except tokens.TokenError:
        return None, ("invalid_link", 403)


def _switch_url(survey_id: str, token: str | None, lang: Lang) -> str:
    params = {"lang": "en" if lang == "zh-CN" else "zh-CN"}
    if token:
        params["t"] = token
    return f"/s/{survey_id}?{urlencode(params)}"


@router.get(SCRIPT_PATH, include_in_schema=False)
async def survey_script() -> Response:
    return Response(SCRIPT, media_type="text/javascript; charset=utf-8",
                    headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"})


@router.get("/s/{survey_id}", response_class=HTMLResponse, summary="The survey form (bilingual HTML)",
            responses=PAGE_RESPONSES)
async def survey_page(
    survey_id: str, request: Request, pool: Pool, ctx: Ctx, t: str | None = None, lang: str | None = None,
    saved: bool = False,
) -> Response:
    accept = request.headers.get("accept-language")
    found = await ctx.definitions.current(pool, survey_id) if _SURVEY_ID.match(survey_id) else None
    if found is None:
        return _page(render_message("not_found", pick_language(lang, None, accept)), 404)
    survey, version = found
    claims, problem = _verify(ctx, survey, t)
    if (limited := _limit(ctx, request, survey=survey, claims=claims, submitting=False)) is not None:
        return limited
    link_request = None
    if claims is not None:
        link_request = await repository.get_request(pool, claims.request_id)
        if link_request is None or link_request.survey_id != survey.id:
            problem = ("invalid_link", 404)
    language = pick_language(lang, link_request.language if link_request else None, accept)
    if problem:
        return _page(render_message(problem[0], language), problem[1])
    submission_id = None
    if claims is not None:
        if await repository.response_for_request(pool, claims.request_id):
            return _page(render_message("already_answered", language))
        async with pool.acquire() as conn, conn.transaction():
            await funnel_step(ctx, conn, claims.request_id, FunnelStep.OPENED)
        draft = await repository.get_draft(pool, f"r:{claims.request_id}")
    else:
        cookie = request.cookies.get(_cookie(survey.id), "")
        submission_id = cookie if _SUBMISSION.match(cookie) else None
        draft = await repository.get_draft(pool, f"s:{survey.id}:{submission_id}") if submission_id else None
    values: dict[str, object] = dict(partial_answers(survey, draft or {}))
    # ?q.<id>=<value> preselects an answer (the faces in the invitation email); only valid values are kept.
    values |= partial_answers(
        survey, {k[2:]: v for k, v in request.query_params.items() if k.startswith("q.") and survey.question(k[2:])}
    )
    new_submission = submission_id is None
    submission_id = submission_id or uuid.uuid4().hex
    response = _page(
        render_form(
            survey, lang=language, action=f"/s/{survey.id}/responses", switch_url=_switch_url(survey.id, t, language),
            token=t, submission_id=submission_id, values=values, version=version,
            draft_action=f"/s/{survey.id}/draft", saved=saved,
        )
    )
    if claims is None and new_submission:
        _remember(response, ctx, survey.id, submission_id)
    return response


def _remember(response: Response, ctx: Context, survey_id: str, submission_id: str | None) -> None:
    """Keep (or, after an answer, renew) a public survey's submission id in the browser: its partial
    answers are found by it, and a new one lets the same browser answer again later."""
    response.set_cookie(
        _cookie(survey_id), submission_id or uuid.uuid4().hex, max_age=ctx.settings.survey_draft_retention_days * 86400,
        path=f"/s/{survey_id}", httponly=True, samesite="lax",
        secure=ctx.settings.survey_public_base_url.startswith("https://"),
    )


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _lang_hint(request: Request) -> Lang:
    """The language of an answer given before the posted one is read (``?lang=``, Accept-Language)."""
    return pick_language(request.query_params.get("lang"), None, request.headers.get("accept-language"))


async def _answers_in(request: Request, lang_hint: Lang) -> tuple[ResponseIn | None, Response | None, bool]:
    """The posted answers (form or JSON), an error answer, and whether it was JSON."""
    content_type = _content_type(request)
    as_json = content_type == "application/json"
    if not as_json and content_type != "application/x-www-form-urlencoded":
        return None, JSONResponse(
            {"detail": "send application/x-www-form-urlencoded (an HTML form) or application/json"}, status_code=415
        ), as_json
    body = await request.body()  # at most MAX_BODY_BYTES: the service's request limits refuse more (413 too_large)
    if as_json:
        try:
            return ResponseIn.model_validate_json(body), None, True
        except ValidationError as exc:
            return None, JSONResponse({"detail": bounded_errors(exc.errors(include_url=False))}, status_code=422), True
    try:
        fields = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=200,
                                strict_parsing=False))
    except (UnicodeDecodeError, ValueError):
        return None, _page(render_message("invalid_link", lang_hint), 400), False
    sid = fields.get("submission_id", "")
    version = fields.get("v", "")
    return ResponseIn.model_construct(
        answers={k[2:]: v for k, v in fields.items() if k.startswith("q.")},
        token=fields.get("t") or request.query_params.get("t") or None,
        language=pick_language(fields.get("lang"), None, request.headers.get("accept-language")),
        version=int(version) if version.isdigit() and len(version) < 9 else None,
        submission_id=sid if _SUBMISSION.match(sid) else None,
    ), None, False


async def _shown(pool: Pool | asyncpg.Connection, ctx: Context, survey_id: str,
                 version: int | None) -> tuple[SurveyDefinition, int] | None:
    """The version the form showed (the current one when it names none or one that does not exist)."""
    if not _SURVEY_ID.match(survey_id):
        return None
    found = await ctx.definitions.current(pool, survey_id)
    if found is None or version is None or version == found[1]:
        return found
    shown = await repository.version_of(pool, survey_id, version, parsed=ctx.definitions)
    return (shown, version) if shown is not None else found


@dataclass(frozen=True)
class Posted:
    """A posted form or JSON body, checked up to the link: what both POST routes start from."""

    data: ResponseIn
    as_json: bool
    survey: SurveyDefinition
    version: int
    claims: tokens.LinkClaims | None
    lang: Lang


async def _posted(survey_id: str, request: Request, pool: Pool | asyncpg.Connection,
                  ctx: Context) -> Posted | Response:
    """The posted answers against the version they were shown, their link verified and the limits
    applied; or the answer to give instead (415, 413, 422, 404, 429, 403, 410)."""
    accept = request.headers.get("accept-language")
    lang_hint = _lang_hint(request)
    data, error, as_json = await _answers_in(request, lang_hint)
    if error is not None:
        return error
    found = await _shown(pool, ctx, survey_id, data.version)
    if found is None:
        return _problem("not_found", 404, lang_hint, as_json=as_json)
    survey, version = found
    claims, problem = _verify(ctx, survey, data.token)
    if (limited := _limit(ctx, request, survey=survey, claims=claims, submitting=True)) is not None:
        return limited
    lang: Lang = pick_language(data.language, None, accept)
    if problem:
        ctx.metrics.responses.labels(survey.id, "invalid").inc()
        return _problem(problem[0], problem[1], lang, as_json=as_json)
    return Posted(data, as_json, survey, version, claims, lang)


@router.post("/s/{survey_id}/responses", summary="Submit answers (form post or JSON); a personal link answers "
             "once: 409 for a second submit", status_code=201, response_model=None, responses=SUBMIT_RESPONSES,
             openapi_extra={"requestBody": SUBMIT_BODY})
async def submit_response(survey_id: str, request: Request, pool: Pool, ctx: Ctx) -> Response:
    # The body first (bounded by the service's request limits): a slow client holds no connection.
    await request.body()
    try:
        # One connection for the page's read and its write: a public answer costs two round trips.
        async with pool.acquire() as conn:
            return await _submit(survey_id, request, conn, ctx)
    except _UNAVAILABLE as exc:
        logger.warning("response not stored: database unavailable", extra={"survey_id": survey_id, "error": repr(exc)})
        return _problem("unavailable", 503, _lang_hint(request), as_json=_content_type(request) == "application/json")


async def _submit(survey_id: str, request: Request, conn: asyncpg.Connection, ctx: Context) -> Response:
    posted = await _posted(survey_id, request, conn, ctx)
    if isinstance(posted, Response):
        return posted
    data, as_json, survey, version, claims, page_lang = (posted.data, posted.as_json, posted.survey, posted.version,
                                                         posted.claims, posted.lang)
    metrics = ctx.metrics
    answers, issues = validate_answers(survey, data.answers)
    if issues:
        metrics.responses.labels(survey.id, "invalid").inc()
        return _invalid(survey, version, issues, data.answers, token=data.token, submission_id=data.submission_id,
                        lang=page_lang, as_json=as_json)
    try:
        # a public page's answer is one statement (atomic alone); a personal link's also marks its
        # invitation's funnel steps: a transaction
        async with conn.transaction() if claims else contextlib.nullcontext():
            result = await service.submit_response(
                ctx,
                conn,
                survey=survey,
                version=version,
                answers=answers,
                request_id=claims.request_id if claims else None,
                submission_id=data.submission_id,
                language=data.language,
            )
    except service.AlreadyAnswered as exc:
        metrics.responses.labels(survey.id, "already_answered").inc()
        return _problem("already_answered", 409, page_lang, as_json=as_json, response_id=exc.response_id)
    except service.UnknownRequest:
        metrics.responses.labels(survey.id, "invalid").inc()
        return _problem("invalid_link", 404, page_lang, as_json=as_json)
    metrics.responses.labels(survey.id, "accepted").inc()
    metrics.feedback_events.labels(survey.id).inc(len(result.feedback_ids))
    if as_json:
        return JSONResponse({"response_id": result.response_id, "feedback_ids": result.feedback_ids,
                             "version": version}, status_code=201)
    response = _page(render_message("thanks", page_lang, survey=survey))
    if claims is None:
        _remember(response, ctx, survey.id, None)  # a new submission id: this browser may answer again later
    return response


@router.post("/s/{survey_id}/draft", summary="Keep partial answers (the page's save button, or its script "
             "as answers are given); reopening the page shows them", response_model=None,
             responses=DRAFT_RESPONSES, openapi_extra={"requestBody": SUBMIT_BODY})
async def save_draft(survey_id: str, request: Request, pool: Pool, ctx: Ctx) -> Response:
    posted = await _posted(survey_id, request, pool, ctx)
    if isinstance(posted, Response):
        return posted
    data, survey, claims = posted.data, posted.survey, posted.claims
    submission_id = None if claims else (data.submission_id or request.cookies.get(_cookie(survey.id)))
    if submission_id is not None and not _SUBMISSION.match(submission_id):
        submission_id = None
    async with pool.acquire() as conn, conn.transaction():
        kept = await service.save_draft(ctx, conn, survey=survey, version=posted.version,
                                        answers=partial_answers(survey, data.answers),
                                        request_id=claims.request_id if claims else None, submission_id=submission_id)
    if kept:
        ctx.metrics.drafts.labels(survey.id).inc()
    if posted.as_json or request.headers.get("x-requested-with") == "fetch":
        return Response(status_code=204 if kept else 409)
    params = {"lang": posted.lang, "saved": "1"} if kept else {"lang": posted.lang}
    if data.token:
        params["t"] = data.token
    response = RedirectResponse(f"/s/{survey.id}?{urlencode(params)}", status_code=303,
                                headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})
    if claims is None and submission_id:
        _remember(response, ctx, survey.id, submission_id)
    return response


def _invalid(
    survey: SurveyDefinition, version: int, issues: list[Issue], raw: dict, *, token: str | None,
    submission_id: str | None, lang: Lang, as_json: bool,
) -> Response:
    if as_json:
        return JSONResponse({"detail": [i.as_dict() for i in issues]}, status_code=422)
    return _page(
        render_form(
            survey, lang=lang, action=f"/s/{survey.id}/responses", switch_url=_switch_url(survey.id, token, lang),
            token=token, submission_id=submission_id or uuid.uuid4().hex, values=raw, issues=issues, version=version,
            draft_action=f"/s/{survey.id}/draft",
        ),
        422,
    )
