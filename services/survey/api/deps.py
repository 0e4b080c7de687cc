"""Route dependencies: the service's context, the pool and who is calling."""

from __future__ import annotations

from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from services.survey.service import Context
from shared.auth import BearerAuth, requires

SURVEYS_ADMIN = "surveys:admin"
"""The scope of the management API (the admin token holds every scope)."""


def get_ctx(request: Request) -> Context:
    return request.app.state.context


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.runtime.pool


def _auth(request: Request) -> BearerAuth:
    return get_ctx(request).auth


Ctx = Annotated[Context, Depends(get_ctx)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
Admin = Depends(requires(_auth, SURVEYS_ADMIN))
"""``Authorization: Bearer <ADMIN_TOKEN>``: 401 without a token or with a wrong one, 403 without the scope."""
