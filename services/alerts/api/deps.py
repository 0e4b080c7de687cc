"""Route dependencies: the service context, the pool, and who is calling.

``Authorization: Bearer <token>`` where the token is either the admin token
(``ADMIN_TOKEN``) or a manager token an admin issued with
``POST /v1/managers/{email}/tokens`` (HMAC-signed with ``LINK_SIGNING_KEY``,
revocable, expiring). A manager may act on alerts of the teams they are on.
"""

from __future__ import annotations

import hmac
from typing import Annotated

import asyncpg
from fastapi import Depends, HTTPException, Request, status

from services.alerts.context import Actor, Context
from services.alerts.links import MANAGER, TokenExpired, TokenInvalid
from services.alerts.repository import reading


def get_ctx(request: Request) -> Context:
    return request.app.state.alerts.ctx


def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.runtime.pool


Ctx = Annotated[Context, Depends(get_ctx)]
Pool = Annotated[asyncpg.Pool, Depends(get_pool)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"})


async def current_actor(request: Request, ctx: Ctx, pool: Pool) -> Actor:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorised("bearer token required (admin or manager token)")
    admin = ctx.settings.admin_token.get_secret_value()
    if hmac.compare_digest(token.encode(), admin.encode()):
        return Actor("admin", admin=True)
    try:
        payload = ctx.signer.verify(MANAGER, token, now=ctx.clock.now())
    except TokenExpired:
        raise _unauthorised("manager token expired") from None
    except TokenInvalid:
        raise _unauthorised("invalid token") from None
    async with reading(pool) as repo:
        if not await repo.token_usable(payload.get("t", ""), payload.get("e", "")):
            raise _unauthorised("manager token revoked")
    return Actor(payload["e"])


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def admin_actor(actor: CurrentActor) -> Actor:
    if not actor.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "admin token required")
    return actor


AdminActor = Annotated[Actor, Depends(admin_actor)]
