"""Management API: surveys and their versions, scoped API tokens (``Authorization: Bearer <ADMIN_TOKEN>``
or a token holding ``surveys:admin``)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel

from services.survey import repository, service
from services.survey.api.deps import (
    INVITATIONS_WRITE,
    SURVEYS_ADMIN,
    VISITS_WRITE,
    Admin,
    Ctx,
    Pool,
    RowId,
    SurveyId,
)
from services.survey.schemas import SLUG, SurveyDefinition, SurveySummary, SurveyVersion, TokenIn
from shared.auth import AUTH_RESPONSES, UNREADABLE_BODY, Principal, Problem
from shared.contracts import MAX_SAFE_INTEGER

router = APIRouter(prefix="/v1", tags=["surveys"], dependencies=[Admin], responses={
    **AUTH_RESPONSES, **UNREADABLE_BODY,
    404: {"model": Problem, "description": "No such survey, version or token."},
})

MAX_SURVEY_BYTES = 256 * 1024
"""Largest survey definition body (413 above): 30 bilingual questions with room to spare."""


class SurveyOut(BaseModel):
    survey: SurveyDefinition
    version: int
    builtin: bool
    created_at: datetime
    responses: int
    url: str


class VersionOut(BaseModel):
    survey_id: str
    version: int
    created: bool  # False: the definition equalled the current version, nothing was stored
    url: str


def _url(ctx: Ctx, survey_id: str) -> str:
    return f"{ctx.settings.survey_public_base_url}/s/{survey_id}"


@router.post("/surveys", status_code=status.HTTP_201_CREATED,
             summary="Create a survey (version 1); both languages are required for every text",
             responses={409: {"model": Problem, "description": "A survey with this id exists (PUT stores a new "
                                                               "version of it)."}})
async def create_survey(survey: SurveyDefinition, pool: Pool, ctx: Ctx) -> SurveyOut:
    async with pool.acquire() as conn, conn.transaction():
        try:
            created_at = await service.create_survey(ctx, conn, survey)
        except service.SurveyExists:
            raise HTTPException(status.HTTP_409_CONFLICT, f"survey {survey.id!r} exists; PUT /v1/surveys/{survey.id} "
                                "stores a new version of it") from None
    return SurveyOut(survey=survey, version=1, builtin=False, created_at=created_at, responses=0,
                     url=_url(ctx, survey.id))


@router.put("/surveys/{survey_id}", summary="Edit a survey: stores the next version under the same id "
            "(responses record the version they answered)")
async def edit_survey(survey_id: SurveyId, survey: SurveyDefinition, pool: Pool, ctx: Ctx) -> VersionOut:
    if survey.id != survey_id:
        raise RequestValidationError([{"type": "value_error", "loc": ("body", "id"), "input": survey.id,
                                       "msg": f"the body's id is not the path's {survey_id!r}"}])
    async with pool.acquire() as conn, conn.transaction():
        result = await service.edit_survey(ctx, conn, survey)
    if result is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no survey {survey_id!r} (POST /v1/surveys creates one)")
    return VersionOut(survey_id=survey_id, version=result[0], created=result[1], url=_url(ctx, survey_id))


@router.get("/surveys", summary="List surveys with their current version and response counts")
async def list_surveys(
    pool: Pool, limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_SAFE_INTEGER)
) -> list[SurveySummary]:
    return await repository.list_surveys(pool, limit=limit, offset=offset)


@router.get("/surveys/{survey_id}", summary="One survey's current definition")
async def get_survey(survey_id: SurveyId, pool: Pool, ctx: Ctx) -> SurveyOut:
    stored = await repository.get_survey(pool, survey_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no survey {survey_id!r}")
    return SurveyOut(survey=stored.definition, version=stored.version, builtin=stored.builtin,
                     created_at=stored.created_at, responses=stored.responses, url=_url(ctx, survey_id))


@router.get("/surveys/{survey_id}/versions", summary="Every version of a survey, oldest first")
async def list_versions(survey_id: SurveyId, pool: Pool) -> list[SurveyVersion]:
    found = await repository.versions(pool, survey_id)
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no survey {survey_id!r}")
    return found


@router.get("/surveys/{survey_id}/versions/{version}", summary="One version of a survey")
async def get_version(survey_id: SurveyId, version: int, pool: Pool) -> SurveyDefinition:
    if not 1 <= version <= 2**31 - 1:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no version {version} of survey {survey_id!r}")
    found = await repository.version_of(pool, survey_id, version)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no version {version} of survey {survey_id!r}")
    return found


# --- scoped API tokens ------------------------------------------------------------------------
ISSUABLE = {SURVEYS_ADMIN, INVITATIONS_WRITE, VISITS_WRITE}
_SURVEY_SCOPE = re.compile(SLUG.replace("^", "^survey:"))


class TokenOut(BaseModel):
    token_id: str
    subject: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None = None
    token: str | None = None  # only when issued: it is not kept


@router.post("/tokens", status_code=status.HTTP_201_CREATED, tags=["tokens"],
             summary="Issue a scoped API token (invitations:write, visits:write, surveys:admin, survey:<id>)")
async def issue_token(body: TokenIn, pool: Pool, ctx: Ctx) -> TokenOut:
    unknown = [(i, s) for i, s in enumerate(body.scopes) if s not in ISSUABLE and not _SURVEY_SCOPE.match(s)]
    if unknown:
        raise RequestValidationError([
            {"type": "value_error", "loc": ("body", "scopes", i), "input": s,
             "msg": f"unknown scope: use {', '.join(sorted(ISSUABLE))} or survey:<survey id>"} for i, s in unknown])
    now = ctx.clock.now()
    record = repository.ApiToken(token_id=str(uuid.uuid4()), subject=body.subject, scopes=sorted(set(body.scopes)),
                                 created_at=now, expires_at=now + timedelta(days=body.days), revoked_at=None)
    await repository.add_token(pool, record)
    token = ctx.api_tokens.issue(Principal(f"token:{body.subject}", frozenset(record.scopes)),
                                 expires_at=record.expires_at, t=record.token_id)
    return TokenOut(**record.__dict__, token=token)


@router.get("/tokens", tags=["tokens"], summary="The API tokens issued (never the tokens themselves)")
async def list_tokens(pool: Pool) -> list[TokenOut]:
    return [TokenOut(**t.__dict__) for t in await repository.tokens(pool)]


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT, tags=["tokens"],
               summary="Revoke an API token (it is refused from the next request on)")
async def revoke_token(token_id: RowId, pool: Pool, ctx: Ctx) -> None:
    if not await repository.revoke_token(pool, token_id, at=ctx.clock.now()):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id!r}")

