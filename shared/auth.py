"""HTTP bearer authentication and scoped permissions, the same in every service.

Who is calling is a :class:`Principal`: a subject and the scopes it holds
(API areas such as ``surveys:admin``, or values such as ``team:retail-east``;
the admin token holds :data:`ALL`). Bearer tokens are turned into principals
by pluggable :class:`Verifier`\\ s — the admin token (:class:`StaticToken`),
signed tokens of a :class:`~shared.signing.Signer` purpose, revocable or not
(:class:`SignedTokens`), or anything a service adds — tried in order by
:class:`BearerAuth`.

Every service answers alike (RFC 6750):

- ``401`` with ``WWW-Authenticate: Bearer`` when no bearer token was sent;
- ``401`` with ``WWW-Authenticate: Bearer error="invalid_token"`` when the
  token is unknown, expired or revoked;
- ``403`` with ``WWW-Authenticate: Bearer error="insufficient_scope"`` when the
  token is good but does not allow what was asked.

Routes declare what they need with :func:`requires` (a FastAPI dependency);
use cases may check a principal themselves (``principal.require(...)``) and
raise :class:`Forbidden`; ``shared.runtime.install`` renders every
:class:`AuthError` as above.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, ClassVar, Protocol

from fastapi import Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, SecretStr

from shared.clock import Clock, SystemClock
from shared.signing import Purpose, Signer, TokenExpired, TokenInvalid

ALL = "*"
"""The scope that allows everything (the admin token's)."""


class AuthError(Exception):
    """A refused request; ``status`` and :meth:`headers` are its HTTP answer."""

    status: ClassVar[int] = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail

    def headers(self) -> dict[str, str]:
        return {}


class Unauthenticated(AuthError):
    """401: no credential, or one that is unknown, expired or revoked (``token_sent``)."""

    status = 401

    def __init__(self, detail: str, *, token_sent: bool) -> None:
        super().__init__(detail)
        self.token_sent = token_sent

    def headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer error="invalid_token"' if self.token_sent else "Bearer"}


class Forbidden(AuthError):
    """403: the caller is known but not allowed this (``scope`` names what was missing)."""

    status = 403

    def __init__(self, detail: str, *, scope: str | None = None) -> None:
        super().__init__(detail)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer error="insufficient_scope"'
        if self.scope and '"' not in self.scope and "\\" not in self.scope:
            challenge += f', scope="{self.scope}"'
        return {"WWW-Authenticate": challenge}


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do."""

    subject: str
    scopes: frozenset[str] = frozenset()

    @property
    def admin(self) -> bool:
        return ALL in self.scopes

    def allows(self, scope: str) -> bool:
        return ALL in self.scopes or scope in self.scopes

    def require(self, *scopes: str) -> Principal:
        """This principal, or :class:`Forbidden` naming the first scope it lacks."""
        for scope in scopes:
            if not self.allows(scope):
                raise Forbidden(f"{self.subject} may not do this (needs {scope})", scope=scope)
        return self

    def values(self, kind: str) -> frozenset[str]:
        """The values of this principal's ``<kind>:<value>`` scopes (e.g. its teams)."""
        prefix = f"{kind}:"
        return frozenset(s[len(prefix):] for s in self.scopes if s.startswith(prefix))


def admin_principal(subject: str = "admin") -> Principal:
    return Principal(subject, frozenset({ALL}))


class Verifier(Protocol):
    """Turns a bearer token into a principal: ``None`` when the token is not one of
    its kind (the next verifier is asked); raises :class:`Unauthenticated` for one of
    its kind that is expired or revoked."""

    async def verify(self, token: str) -> Principal | None: ...


def _digest(secret: str | SecretStr) -> bytes:
    raw = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
    if not raw:
        raise ValueError("an empty token would let anyone in")
    return hashlib.sha256(raw.encode()).digest()


class StaticToken:
    """A configured token (e.g. ``ADMIN_TOKEN``) standing for one principal; ``previous``
    tokens are still accepted (rotation). Compared in constant time, lengths included."""

    def __init__(self, token: str | SecretStr, principal: Principal, *previous: str | SecretStr) -> None:
        self._digests = tuple(_digest(t) for t in (token, *previous))
        self._principal = principal

    @classmethod
    def admin(cls, token: str | SecretStr, *previous: str | SecretStr) -> StaticToken:
        return cls(token, admin_principal(), *previous)

    async def verify(self, token: str) -> Principal | None:
        given = hashlib.sha256(token.encode()).digest()
        matched = [hmac.compare_digest(given, d) for d in self._digests]
        return self._principal if any(matched) else None


def claims_of(principal: Principal) -> dict[str, Any]:
    """The token claims of a principal (``sub``, ``scp``): what :class:`SignedTokens` issues."""
    return {"sub": principal.subject, "scp": sorted(principal.scopes)}


def principal_of(claims: Mapping[str, Any]) -> Principal:
    """The principal of :func:`claims_of` claims."""
    return Principal(str(claims["sub"]), frozenset(str(s) for s in claims.get("scp", ())))


class SignedTokens:
    """Bearer tokens signed for one purpose (stateless, expiring), optionally revocable.

    ``principal`` maps verified claims to the caller (default :func:`principal_of`);
    ``usable`` (e.g. a database lookup of revoked token ids) may refuse a genuine
    token, which answers 401 ``invalid_token``."""

    def __init__(
        self,
        signer: Signer,
        purpose: Purpose,
        *,
        clock: Clock | None = None,
        principal: Callable[[Mapping[str, Any]], Principal] = principal_of,
        usable: Callable[[Mapping[str, Any]], Awaitable[bool]] | None = None,
    ) -> None:
        self._signer = signer
        self._purpose = purpose
        self._clock = clock or SystemClock()
        self._principal = principal
        self._usable = usable

    def issue(self, principal: Principal, *, expires_at: datetime, **claims: Any) -> str:
        """A token for ``principal`` (plus any extra claims, e.g. a token id for revocation)."""
        return self._signer.sign(self._purpose, {**claims, **claims_of(principal)}, expires_at=expires_at)

    async def verify(self, token: str) -> Principal | None:
        try:
            claims = self._signer.verify(self._purpose, token, now=self._clock.now())
        except TokenExpired:
            raise Unauthenticated(f"{self._purpose.name} expired", token_sent=True) from None
        except TokenInvalid:
            return None
        if self._usable is not None and not await self._usable(claims):
            raise Unauthenticated(f"{self._purpose.name} revoked", token_sent=True)
        try:
            return self._principal(claims)
        except (KeyError, TypeError, ValueError):
            raise Unauthenticated(f"{self._purpose.name} carries no usable identity", token_sent=True) from None


class BearerAuth:
    """``Authorization: Bearer <token>`` checked against verifiers, in order."""

    def __init__(self, *verifiers: Verifier) -> None:
        if not verifiers:
            raise ValueError("BearerAuth needs at least one verifier")
        self._verifiers = verifiers

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization`` header value; raises :class:`Unauthenticated`."""
        scheme, _, credentials = (authorization or "").partition(" ")
        token = credentials.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("bearer token required", token_sent=False)
        for verifier in self._verifiers:
            principal = await verifier.verify(token)
            if principal is not None:
                return principal
        raise Unauthenticated("invalid token", token_sent=True)


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <token>` (the admin token, or a scoped token).")


def context_auth(request: Request) -> BearerAuth:
    """The app's :class:`BearerAuth`: its context's ``auth`` (the convention of every service)."""
    return request.app.state.context.auth


def requires(*scopes: str, auth: Callable[[Request], BearerAuth] = context_auth) -> Callable[..., Awaitable[Principal]]:
    """A FastAPI dependency: the caller's :class:`Principal` holding every one of ``scopes``
    (401 / 403 otherwise). ``auth`` finds the app's :class:`BearerAuth` for a request.

        KpiReader = Depends(requires("kpis:read"))
        async def route(principal: Annotated[Principal, Depends(requires())]) -> ...
    """

    async def dependency(
        request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
    ) -> Principal:
        principal = await auth(request).authenticate(request.headers.get("authorization"))
        return principal.require(*scopes)

    return dependency


class Problem(BaseModel):
    """``{"detail": "..."}``: a refused request (auth) or a missing resource."""

    detail: str


AUTH_RESPONSES: dict[int | str, dict] = {
    401: {"model": Problem, "description": "No token, or an unknown, expired or revoked one (`WWW-Authenticate`)."},
    403: {"model": Problem, "description": "A known token without the scope this needs."},
}
"""OpenAPI ``responses`` of a route behind :func:`requires` (``APIRouter(responses=AUTH_RESPONSES)``)."""

UNREADABLE_BODY: dict[int | str, dict] = {
    400: {"model": Problem, "description": "A body that cannot be read as JSON (not UTF-8)."},
}
"""OpenAPI ``responses`` of a route with a JSON body: FastAPI answers 400 to bytes it cannot decode."""


def error_response(exc: AuthError) -> JSONResponse:
    """The HTTP answer of a refused request: ``{"detail": ...}`` with its challenge."""
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=exc.headers())
