"""Management API for survey definitions (``Authorization: Bearer <ADMIN_TOKEN>``)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Query, status
from pydantic import BaseModel

from services.survey import repository, service
from services.survey.api.deps import Admin, Ctx, Pool
from services.survey.schemas import SurveyDefinition, SurveySummary
from shared.auth import AUTH_RESPONSES, UNREADABLE_BODY, Problem
from shared.contracts import MAX_SAFE_INTEGER

router = APIRouter(prefix="/v1/surveys", tags=["surveys"], dependencies=[Admin], responses={
    **AUTH_RESPONSES, **UNREADABLE_BODY,
    404: {"model": Problem, "description": "No such survey."},
    409: {"model": Problem, "description": "A survey with this id exists (surveys are immutable)."},
})

MAX_SURVEY_BYTES = 256 * 1024
"""Largest survey definition body (413 above): 30 bilingual questions with room to spare."""


class SurveyOut(BaseModel):
    survey: SurveyDefinition
    builtin: bool
    created_at: datetime
    responses: int
    url: str


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a survey (immutable; a new version is a new id)")
async def create_survey(survey: SurveyDefinition, pool: Pool, ctx: Ctx) -> SurveyOut:
    async with pool.acquire() as conn:
        try:
            created_at = await service.create_survey(conn, survey)
        except service.SurveyExists:
            raise HTTPException(status.HTTP_409_CONFLICT, f"survey {survey.id!r} exists; surveys are immutable, "
                                "create a new id for a changed survey") from None
    return SurveyOut(survey=survey, builtin=False, created_at=created_at, responses=0,
                     url=f"{ctx.settings.survey_public_base_url}/s/{survey.id}")


@router.get("", summary="List surveys with their response counts")
async def list_surveys(
    pool: Pool, limit: int = Query(100, ge=1, le=500), offset: int = Query(0, ge=0, le=MAX_SAFE_INTEGER)
) -> list[SurveySummary]:
    return await repository.list_surveys(pool, limit=limit, offset=offset)


@router.get("/{survey_id}", summary="One survey's definition")
async def get_survey(survey_id: str, pool: Pool, ctx: Ctx) -> SurveyOut:
    stored = await repository.get_survey(pool, survey_id)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no survey {survey_id!r}")
    return SurveyOut(survey=stored.definition, builtin=stored.builtin, created_at=stored.created_at,
                     responses=stored.responses, url=f"{ctx.settings.survey_public_base_url}/s/{survey_id}")
