"""Signed personal survey links.

A token binds a response to one survey request (and through it to the
customer and, for recovery surveys, the alert). It carries only ids and an
expiry — never the customer's email or name — so a forwarded or logged link
leaks nothing personal::

    base64url(json payload) "." base64url(HMAC-SHA256(key, DOMAIN + payload part))

The HMAC input starts with a domain string, so a token minted here is never
valid for another service that happens to share ``LINK_SIGNING_KEY``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

_DOMAIN = b"keymoment.survey-link.v1."
MAX_TOKEN_CHARS = 1024


class TokenError(ValueError):
    """The link is not one we signed (tampered, truncated, another key or survey)."""


class TokenExpired(TokenError):
    """The link was ours but is too old."""


@dataclass(frozen=True)
class LinkClaims:
    survey_id: str
    request_id: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, payload_part: str) -> bytes:
    return hmac.new(key, _DOMAIN + payload_part.encode("ascii"), hashlib.sha256).digest()


def sign(key: str, *, survey_id: str, request_id: str, ttl: timedelta, now: datetime | None = None) -> str:
    if not key:
        raise ValueError("an empty signing key would make every link forgeable")
    expires = int(((now or datetime.now(UTC)) + ttl).timestamp())
    payload = json.dumps({"s": survey_id, "r": request_id, "exp": expires}, separators=(",", ":"), ensure_ascii=False)
    payload_part = _b64(payload.encode())
    return f"{payload_part}.{_b64(_mac(key.encode(), payload_part))}"


def verify(key: str, token: str, *, survey_id: str, now: datetime | None = None) -> LinkClaims:
    """The claims of a valid token for ``survey_id``; raises :class:`TokenExpired`
    or :class:`TokenError` otherwise. The signature is checked before anything
    in the payload is trusted, in constant time."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise TokenError("malformed survey link")
    payload_part, mac_part = token.split(".")
    try:
        given = _unb64(mac_part)
        expected = _mac(key.encode(), payload_part)
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise TokenError("malformed survey link") from exc
    if not hmac.compare_digest(given, expected):
        raise TokenError("survey link signature does not match")
    try:
        claims = json.loads(_unb64(payload_part))
        link = LinkClaims(
            survey_id=str(claims["s"]),
            request_id=str(claims["r"]),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise TokenError("malformed survey link payload") from exc
    if link.survey_id != survey_id:
        raise TokenError("survey link belongs to another survey")
    if (now or datetime.now(UTC)) >= link.expires_at:
        raise TokenExpired("survey link has expired")
    return link
