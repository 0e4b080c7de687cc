"""Route dependencies: the runtime's pieces and admin authentication."""

from __future__ import annotations

import hmac
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request, status

from services.survey.metrics import SurveyMetrics
from services.survey.settings import SurveySettings


def get_settings(request: Request) -> SurveySettings:
    return request.app.state.runtime.settings


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.runtime.pool


def get_metrics(request: Request) -> SurveyMetrics:
    return request.app.state.survey_metrics


def require_admin(request: Request, settings: Annotated[SurveySettings, Depends(get_settings)]) -> None:
    """``Authorization: Bearer <ADMIN_TOKEN>``: 401 without credentials, 403 with wrong ones."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "admin bearer token required", headers={"WWW-Authenticate": "Bearer"}
        )
    expected = settings.admin_token.get_secret_value().encode()
    if not hmac.compare_digest(credentials.strip().encode(), expected):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "invalid admin token")


Settings = Annotated[SurveySettings, Depends(get_settings)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Metrics = Annotated[SurveyMetrics, Depends(get_metrics)]
Admin = Depends(require_admin)
