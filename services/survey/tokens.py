"""Signed personal survey links (the ``survey-link`` purpose of :mod:`shared.signing`).

A token binds a response to one survey request (and through it to the
customer and, for recovery surveys, the alert). It carries only ids and an
expiry — never the customer's email or name — so a forwarded or logged link
leaks nothing personal. Being purpose-bound, a survey link is never valid as
any other token signed with the same ``LINK_SIGNING_KEY``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.signing import Purpose, Signer, TokenExpired, TokenInvalid

__all__ = ["SURVEY_API_TOKEN", "SURVEY_LINK", "SURVEY_UNSUBSCRIBE", "LinkClaims", "TokenError", "TokenExpired", "sign",
           "sign_unsubscribe", "verify", "verify_unsubscribe"]

SURVEY_LINK = Purpose("survey-link")
MAX_TOKEN_CHARS = 1024

TokenError = TokenInvalid
"""The link is not one we signed (tampered, truncated, another key or survey)."""


@dataclass(frozen=True)
class LinkClaims:
    survey_id: str
    request_id: str
    expires_at: datetime


def _signer(key: Signer | str) -> Signer:
    return key if isinstance(key, Signer) else Signer(key)


def sign(key: Signer | str, *, survey_id: str, request_id: str, ttl: timedelta, now: datetime | None = None) -> str:
    """A link token for ``request_id`` of ``survey_id``, valid for ``ttl``."""
    expires_at = (now or datetime.now(UTC)) + ttl
    return _signer(key).sign(SURVEY_LINK, {"s": survey_id, "r": request_id}, expires_at=expires_at)


def verify(key: Signer | str, token: str, *, survey_id: str, now: datetime | None = None) -> LinkClaims:
    """The claims of a valid token for ``survey_id``; raises :class:`TokenExpired`
    or :class:`TokenError` otherwise."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed survey link")
    claims = _signer(key).verify(SURVEY_LINK, token, now=now or datetime.now(UTC))
    try:
        link = LinkClaims(
            survey_id=str(claims["s"]),
            request_id=str(claims["r"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise TokenError("malformed survey link payload") from exc
    if link.survey_id != survey_id:
        raise TokenError("survey link belongs to another survey")
    return link


# --- unsubscribe links -------------------------------------------------------------------------
SURVEY_UNSUBSCRIBE = Purpose("survey-unsubscribe")
UNSUBSCRIBE_TTL = timedelta(days=400)
"""An unsubscribe link outlives the survey link: it works for a year and more after the mail."""


def sign_unsubscribe(key: Signer | str, *, request_id: str, now: datetime) -> str:
    """The token of an invitation's unsubscribe link (``/u/<token>``)."""
    return _signer(key).sign(SURVEY_UNSUBSCRIBE, {"r": request_id}, expires_at=now + UNSUBSCRIBE_TTL)


def verify_unsubscribe(key: Signer | str, token: str, *, now: datetime) -> str:
    """The invitation (request id) of an unsubscribe token; raises :class:`TokenError`."""
    if len(token) > MAX_TOKEN_CHARS:
        raise TokenError("malformed unsubscribe link")
    claims = _signer(key).verify(SURVEY_UNSUBSCRIBE, token, now=now)
    request_id = claims.get("r")
    if not isinstance(request_id, str) or not request_id:
        raise TokenError("malformed unsubscribe link payload")
    return request_id


# --- scoped API tokens -------------------------------------------------------------------------
SURVEY_API_TOKEN = Purpose("survey-api-token", tag="kmsv")
"""Bearer tokens for the invitation API (shared.auth.SignedTokens); revocable (``api_tokens``)."""
