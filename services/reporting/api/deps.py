"""Route dependencies: the pool, the settings, and the admin check."""

from __future__ import annotations

import hmac
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request, status

from services.reporting.settings import ReportingSettings


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.runtime.pool


def get_settings(request: Request) -> ReportingSettings:
    return request.app.state.runtime.settings


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Settings = Annotated[ReportingSettings, Depends(get_settings)]


async def require_admin(request: Request, settings: Settings) -> None:
    """KPIs are company-internal figures: ``Authorization: Bearer <ADMIN_TOKEN>``."""
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip()
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "bearer token required",
                            headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(token.encode(), settings.admin_token.get_secret_value().encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers={"WWW-Authenticate": "Bearer"})


Admin = Depends(require_admin)
