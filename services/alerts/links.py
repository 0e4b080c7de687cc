"""Signed tokens: email action links and manager API tokens.

A token is ``<purpose-version>.<base64url JSON payload>.<base64url HMAC-SHA256>``
keyed with ``LINK_SIGNING_KEY`` and bound to its purpose, so a link token can
never be used as an API token and vice versa. Payloads carry an expiry
(``exp``, Unix seconds) and only ids and an address, nothing secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

LINK = "l1"
MANAGER = "m1"


class TokenInvalid(ValueError):
    """Forged, damaged or meant for something else."""


class TokenExpired(ValueError):
    """Genuine but past its expiry."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Signer:
    key: bytes

    def _mac(self, purpose: str, body: str) -> str:
        return _b64(hmac.new(self.key, f"{purpose}.{body}".encode(), hashlib.sha256).digest())

    def sign(self, purpose: str, payload: dict[str, Any], *, expires_at: datetime) -> str:
        body = _b64(json.dumps({**payload, "exp": int(expires_at.timestamp())}, separators=(",", ":")).encode())
        return f"{purpose}.{body}.{self._mac(purpose, body)}"

    def verify(self, purpose: str, token: str, *, now: datetime) -> dict[str, Any]:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != purpose:
            raise TokenInvalid("not a token of this kind")
        _, body, mac = parts
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            raise TokenInvalid("bad signature")
        try:
            payload = json.loads(_unb64(body))
            expires = int(payload["exp"])
        except (ValueError, KeyError, TypeError) as exc:
            raise TokenInvalid("damaged payload") from exc
        if now.timestamp() >= expires:
            raise TokenExpired("expired")
        return payload
