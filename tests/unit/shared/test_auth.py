"""The one HTTP auth: principals and scopes, pluggable verifiers (admin token, signed
and revocable tokens), and the same 401 / 403 answers in every service."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from fastapi import Depends, FastAPI, Request

from shared.auth import (
    ALL,
    BearerAuth,
    Forbidden,
    Principal,
    SignedTokens,
    StaticToken,
    Unauthenticated,
    requires,
)
from shared.clock import ManualClock
from shared.runtime import ServiceRuntime, install
from shared.settings import ServiceSettings
from shared.signing import Purpose, Signer

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
API = Purpose("test-api-token", tag="ta")


def test_principal_scopes():
    manager = Principal("li.wei@example.cn", frozenset({"alerts:act", "team:retail-east", "team:airport"}))
    assert manager.allows("alerts:act") and not manager.allows("kpis:read") and not manager.admin
    assert manager.values("team") == {"retail-east", "airport"}
    assert manager.require("alerts:act", "team:airport") is manager
    with pytest.raises(Forbidden) as refused:
        manager.require("alerts:act", "kpis:read")
    assert refused.value.scope == "kpis:read" and refused.value.status == 403
    admin = Principal("admin", frozenset({ALL}))
    assert admin.admin and admin.allows("anything:at-all") and admin.require("kpis:read") is admin


async def test_static_token_compares_whole_tokens_and_accepts_previous_ones():
    token = StaticToken.admin("admin-token-2026", "admin-token-2025")
    assert (await token.verify("admin-token-2026")).admin
    assert (await token.verify("admin-token-2025")).admin
    for wrong in ("admin-token-202", "admin-token-20266", "", "ADMIN-TOKEN-2026"):
        assert await token.verify(wrong) is None
    with pytest.raises(ValueError):
        StaticToken.admin("")


async def test_bearer_auth_tries_verifiers_in_order_and_says_why_it_refuses():
    auth = BearerAuth(StaticToken.admin("root"), StaticToken("kpi-reader", Principal("grafana", frozenset({"kpis:read"}))))
    assert (await auth.authenticate("Bearer root")).admin
    assert (await auth.authenticate("bearer   kpi-reader ")).subject == "grafana"
    for header in (None, "", "Bearer", "Bearer  ", "Basic cm9vdA==", "root"):
        with pytest.raises(Unauthenticated) as missing:
            await auth.authenticate(header)
        assert missing.value.headers() == {"WWW-Authenticate": "Bearer"}, header
    with pytest.raises(Unauthenticated) as unknown:
        await auth.authenticate("Bearer nope")
    assert unknown.value.headers() == {"WWW-Authenticate": 'Bearer error="invalid_token"'}


async def test_signed_tokens_carry_scopes_expire_and_can_be_revoked():
    clock = ManualClock(NOW)
    revoked: set[str] = set()

    async def usable(claims) -> bool:
        return claims["jti"] not in revoked

    tokens = SignedTokens(Signer("k" * 32), API, clock=clock, usable=usable)
    manager = Principal("li.wei@example.cn", frozenset({"team:retail-east"}))
    token = tokens.issue(manager, expires_at=NOW + timedelta(days=1), jti="t-1")
    assert await tokens.verify(token) == manager
    assert await tokens.verify("ta.not-a-token") is None  # not ours: the next verifier may know it
    assert await SignedTokens(Signer("k" * 32), Purpose("other"), clock=clock).verify(token) is None
    revoked.add("t-1")
    with pytest.raises(Unauthenticated, match="revoked") as refused:
        await tokens.verify(token)
    assert refused.value.token_sent
    revoked.clear()
    clock.advance(days=1)
    with pytest.raises(Unauthenticated, match="expired"):
        await tokens.verify(token)


def _app(auth: BearerAuth) -> FastAPI:
    settings = ServiceSettings(keymoment_env="test")
    app = FastAPI()
    # the shared answer to refusals; by convention the service's context holds its BearerAuth
    install(app, ServiceRuntime(settings, migrations=Path("/nonexistent")), context=SimpleNamespace(auth=auth))

    def get_auth(request: Request) -> BearerAuth:  # an app keeping it elsewhere says where
        return request.app.state.context.auth

    @app.get("/kpis", dependencies=[Depends(requires("kpis:read"))])
    async def kpis() -> dict:
        return {"ok": True}

    @app.get("/whoami")
    async def whoami(principal: Principal = Depends(requires(auth=get_auth))) -> dict:
        return {"subject": principal.subject}

    return app


async def test_every_service_answers_401_and_403_alike_over_http():
    auth = BearerAuth(StaticToken.admin("root"), StaticToken("support", Principal("support-desk", frozenset())))
    transport = httpx.ASGITransport(app=_app(auth))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        missing = await http.get("/kpis")
        wrong = await http.get("/kpis", headers={"Authorization": "Bearer nope"})
        not_allowed = await http.get("/kpis", headers={"Authorization": "Bearer support"})
        allowed = await http.get("/kpis", headers={"Authorization": "Bearer root"})
        who = await http.get("/whoami", headers={"Authorization": "Bearer support"})
        spec = (await http.get("/openapi.json")).json()
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert (wrong.status_code, wrong.headers["www-authenticate"]) == (401, 'Bearer error="invalid_token"')
    assert wrong.json() == {"detail": "invalid token"}
    assert not_allowed.status_code == 403
    assert not_allowed.headers["www-authenticate"] == 'Bearer error="insufficient_scope", scope="kpis:read"'
    assert allowed.status_code == 200 and who.json() == {"subject": "support-desk"}
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"  # documented for integrators
