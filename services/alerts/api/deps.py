"""Route dependencies: the service context, the pool, and who is calling.

``Authorization: Bearer <token>`` where the token is the admin token (``ADMIN_TOKEN``) or a
manager token an admin issued with ``POST /v1/managers/{email}/tokens`` (signed with the
manager-token key, expiring, revocable, carrying the manager's teams). Refusals are
``shared.auth``'s, as in every service: 401 without a token or with an unknown, expired or
revoked one, 403 when the token does not allow what was asked (an admin route, another
team's alert, a global silence).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any

import asyncpg
from fastapi import Depends
from pydantic import SecretStr

from services.alerts.context import Actor, Context
from services.alerts.links import MANAGER_TOKEN
from services.alerts.repository import reading
from services.alerts.routing import Router
from shared.auth import BearerAuth, Principal, SignedTokens, StaticToken, principal_of, requires
from shared.clock import Clock
from shared.runtime import app_context, app_pool
from shared.signing import Signer

ALERTS_ADMIN = "alerts:admin"
"""The scope of the admin-only routes (manager tokens); the admin token holds every scope."""

Ctx = Annotated[Context, Depends(app_context)]
Pool = Annotated[asyncpg.Pool, Depends(app_pool)]


def bearer_auth(*, admin_token: SecretStr, signer: Signer, router: Router, clock: Clock,
                pool: Callable[[], asyncpg.Pool]) -> BearerAuth:
    """The admin token, then manager tokens checked against their revocation record (``pool``:
    the runtime's, once it has started)."""

    def principal(claims: Mapping[str, Any]) -> Principal:
        if "sub" in claims:
            return principal_of(claims)
        # issued before tokens carried teams: the teams the routes file names the manager in
        email = str(claims["e"]).lower()
        return Principal(email, frozenset(f"team:{team}" for team in router.teams_of(email)))

    async def usable(claims: Mapping[str, Any]) -> bool:
        async with reading(pool()) as repo:
            return await repo.token_usable(str(claims.get("t", "")), str(claims.get("sub") or claims.get("e") or ""))

    managers = SignedTokens(signer, MANAGER_TOKEN, clock=clock, principal=principal, usable=usable)
    return BearerAuth(StaticToken.admin(admin_token), managers)


def actor_of(principal: Principal) -> Actor:
    return Actor(principal.subject, admin=principal.admin, teams=principal.values("team"))


async def current_actor(principal: Annotated[Principal, Depends(requires())]) -> Actor:
    return actor_of(principal)


async def admin_actor(principal: Annotated[Principal, Depends(requires(ALERTS_ADMIN))]) -> Actor:
    return actor_of(principal)


CurrentActor = Annotated[Actor, Depends(current_actor)]
AdminActor = Annotated[Actor, Depends(admin_actor)]
