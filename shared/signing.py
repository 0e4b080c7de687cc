"""Signed tokens: purpose-bound, expiring HMAC-SHA256, with key ids for rotation.

Every signed thing the system hands out (personal survey links, alert action
links, manager API tokens) is one of these::

    [<tag>.]<payload>.<kid><mac>

    payload = base64url(JSON claims, with "exp": Unix seconds)
    mac     = base64url(HMAC-SHA256(key <kid>, purpose.domain + payload)), 43 characters

Every character is URL-safe (``[A-Za-z0-9_.-]``): links survive mail clients
and the link-finders of plain-text mail.

- **Purpose-bound.** The MAC input starts with the purpose's domain string, so a
  token made for one purpose (a survey link) never verifies as another (a
  manager token), even under the same key. A purpose may also show a ``tag``
  in front of the token so that a person (or a secret scanner) can tell what
  it is.
- **Expiring.** ``exp`` is checked after the signature, against the caller's
  clock.
- **Rotatable.** The token names its key (``kid``). A :class:`Keyring` signs
  with its current key and verifies with it and any verify-only previous keys:
  rotating means making a new key current and keeping the old one verify-only
  until the longest-lived token signed with it has expired, then dropping it.
  A key's id is derived from its secret unless given, so the same secret
  always has the same id and moving it to the verify-only list is all a
  rotation needs.
- **One key per purpose** is possible without another shape: a
  :class:`Signer` takes a default keyring and, optionally, a keyring per
  purpose name.
- **Settings.** :class:`SigningSettings` is the fragment a service's settings
  include: ``LINK_SIGNING_KEY`` (the default current key) and
  ``LINK_SIGNING_OLD_KEYS`` (verify-only), plus :meth:`SigningSettings.keyring`
  for a purpose's own key setting falling back to them.

Tokens signed before key ids existed (a bare 43-character MAC) are verified against
every key of the ring, so links already sent keep working across the upgrade.

The signature is checked before anything in the payload is trusted, in
constant time. Payloads carry ids and expiry, never secrets.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# The same configuration as ServiceSettings': a mixin's own config would override it.
_SETTINGS_CONFIG = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True)

MAX_TOKEN_CHARS = 2048
_MAC_CHARS = 43  # base64url of 32 bytes, unpadded
_KID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")
_KID_DOMAIN = b"keymoment.signing-key-id."


class TokenInvalid(ValueError):
    """Not a token of this purpose signed by a key we hold: forged, damaged, truncated,
    made for something else, or signed by a retired key."""


class TokenExpired(TokenInvalid):
    """Genuine, but past its expiry."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _secret_bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else bytes(secret)


@dataclass(frozen=True)
class SigningKey:
    """One HMAC key and its id (``kid``, 1-32 characters of ``[A-Za-z0-9_-]``)."""

    secret: bytes = field(repr=False)
    kid: str

    @classmethod
    def of(cls, secret: str | bytes, kid: str | None = None) -> SigningKey:
        """A key from its secret; without ``kid`` the id is derived from the secret
        (8 characters of an HMAC of it: names the key, reveals nothing usable)."""
        raw = _secret_bytes(secret)
        if not raw:
            raise ValueError("an empty signing key would make every link forgeable")
        if kid is None:
            kid = _b64(hmac.new(raw, _KID_DOMAIN, hashlib.sha256).digest())[:8]
        if not _KID.match(kid):
            raise ValueError(f"a key id is 1-32 characters of A-Z a-z 0-9 _ -, got {kid!r}")
        return cls(raw, kid)


@dataclass(frozen=True)
class Keyring:
    """The key that signs (``current``) and the keys that only verify (``verify_only``)."""

    current: SigningKey
    verify_only: tuple[SigningKey, ...] = ()

    def __post_init__(self) -> None:
        kids = [k.kid for k in self.keys]
        if len(set(kids)) != len(kids):
            raise ValueError(f"two signing keys share an id: {sorted(kids)}")

    @classmethod
    def of(cls, current: str | bytes | SigningKey, *verify_only: str | bytes | SigningKey) -> Keyring:
        def key(k: str | bytes | SigningKey) -> SigningKey:
            return k if isinstance(k, SigningKey) else SigningKey.of(k)

        return cls(key(current), tuple(key(k) for k in verify_only))

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        return (self.current, *self.verify_only)

    def find(self, kid: str) -> SigningKey | None:
        for key in self.keys:
            if hmac.compare_digest(key.kid, kid):
                return key
        return None


@dataclass(frozen=True)
class Purpose:
    """What a token is for. ``name`` is unique per kind of token (``survey-link``,
    ``manager-token``); ``domain`` (default ``keymoment.<name>.v1.``) starts every MAC
    input and must differ between purposes and end with a dot; ``tag`` is an optional
    visible prefix (``<tag>.`` in front of the token)."""

    name: str
    tag: str = ""
    domain: bytes = b""

    def __post_init__(self) -> None:
        if not self.domain:
            object.__setattr__(self, "domain", f"keymoment.{self.name}.v1.".encode())
        if not self.domain.endswith(b"."):
            raise ValueError("a purpose's domain ends with '.' (so that no domain is a prefix of another's input)")
        if "." in self.tag:
            raise ValueError("a purpose's tag holds no '.'")


class Signer:
    """Signs and verifies tokens of any purpose with a keyring (a raw secret is a
    keyring of one key); ``per_purpose`` maps a purpose name to its own keyring."""

    def __init__(self, keys: Keyring | str | bytes, *, per_purpose: Mapping[str, Keyring] | None = None) -> None:
        self._default = keys if isinstance(keys, Keyring) else Keyring.of(keys)
        self._per_purpose = dict(per_purpose or {})

    def keyring(self, purpose: Purpose) -> Keyring:
        return self._per_purpose.get(purpose.name, self._default)

    def sign(self, purpose: Purpose, claims: Mapping[str, Any], *, expires_at: datetime) -> str:
        """A token carrying ``claims`` (JSON values; ``exp`` is set from ``expires_at``)."""
        key = self.keyring(purpose).current
        body = json.dumps({**claims, "exp": int(expires_at.timestamp())}, separators=(",", ":"), ensure_ascii=False)
        payload = _b64(body.encode())
        token = f"{payload}.{key.kid}{_b64(_mac(key, purpose, payload))}"
        return f"{purpose.tag}.{token}" if purpose.tag else token

    def verify(self, purpose: Purpose, token: str, *, now: datetime) -> dict[str, Any]:
        """The claims (with ``exp``) of a valid, unexpired token of ``purpose``; raises
        :class:`TokenExpired` or :class:`TokenInvalid`."""
        if not token or len(token) > MAX_TOKEN_CHARS or not token.isascii():
            raise TokenInvalid("malformed token")
        if purpose.tag:
            tag, _, token = token.partition(".")
            if tag != purpose.tag:
                raise TokenInvalid(f"not a {purpose.name} token")
        parts = token.split(".")
        if len(parts) != 2:
            raise TokenInvalid("malformed token")
        payload, signature = parts
        ring = self.keyring(purpose)
        kid, mac_part = signature[:-_MAC_CHARS], signature[-_MAC_CHARS:]
        if kid:
            key = ring.find(kid)
            if key is None:
                raise TokenInvalid("signature by an unknown key (retired, or another service's)")
            candidates: tuple[SigningKey, ...] = (key,)
        else:  # signed before key ids existed: any key of the ring may have made it
            candidates = ring.keys
        try:
            given = _unb64(mac_part)
        except (binascii.Error, ValueError) as exc:
            raise TokenInvalid("malformed token") from exc
        # every candidate is computed and compared: the time taken does not tell which key matched
        matched = [hmac.compare_digest(given, _mac(k, purpose, payload)) for k in candidates]
        if not any(matched):
            raise TokenInvalid("signature does not match")
        try:
            claims = json.loads(_unb64(payload))
            expires = int(claims["exp"])
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise TokenInvalid("damaged payload") from exc
        if now.timestamp() >= expires:
            raise TokenExpired(f"{purpose.name} token has expired")
        return claims


def _mac(key: SigningKey, purpose: Purpose, payload: str) -> bytes:
    return hmac.new(key.secret, purpose.domain + payload.encode("ascii"), hashlib.sha256).digest()


# --------------------------------------------------------------------------------------- settings
class SigningSettings(BaseSettings):
    """The signing keys of a service's settings (included like ``MailSettings``):
    ``LINK_SIGNING_KEY`` signs every purpose that has no key of its own, and its retired
    values in ``LINK_SIGNING_OLD_KEYS`` only verify. A service with several purposes gives
    each its own key with two fields of its own (``<name>_signing_key``,
    ``<name>_signing_old_keys``) and :meth:`keyring` (see the alerts settings).

    Key ids are derived from the secrets (:meth:`SigningKey.of`): rotating a key is moving
    its value to the old keys and setting a new one; retiring it is removing it from the old
    keys once the longest-lived token it signed has expired."""

    model_config = _SETTINGS_CONFIG

    link_signing_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key signing links and tokens: the current key of every purpose without a key of "
        "its own (required outside dev/test). To rotate it, move its value to LINK_SIGNING_OLD_KEYS and set a new "
        "one.",
    )
    link_signing_old_keys: SecretStr | None = Field(
        None,
        description="Comma-separated retired values of LINK_SIGNING_KEY: they only verify, so links and tokens "
        "already handed out keep working; remove one once the longest-lived token it signed has expired.",
    )

    def keyring(self, key: SecretStr | None = None, old_keys: SecretStr | None = None, *,
                name: str = "LINK_SIGNING_KEY") -> Keyring:
        """A purpose's keys: its own ``key`` with its verify-only ``old_keys`` or, without a key
        of its own, ``LINK_SIGNING_KEY`` with ``LINK_SIGNING_OLD_KEYS`` (and ``old_keys``).
        ``name`` names the purpose's key setting in errors."""
        own = _secret_values(key)
        current = own[0] if own else None
        old = _secret_values(old_keys)
        if current is None:
            defaults = _secret_values(self.link_signing_key)
            if not defaults:
                raise ValueError("LINK_SIGNING_KEY must be set")
            current, old = defaults[0], [*_secret_values(self.link_signing_old_keys), *old]
        try:
            return Keyring.of(current, *old)
        except ValueError as exc:
            raise ValueError(f"{name} and its old keys: {exc}") from None

    def signer(self) -> Signer:
        """A signer of every purpose with ``LINK_SIGNING_KEY``'s keyring (a service with
        keys per purpose overrides this)."""
        return Signer(self.keyring())


def _secret_values(value: SecretStr | None) -> list[str]:
    """The comma-separated values of a key setting (blanks dropped)."""
    raw = value.get_secret_value() if value is not None else ""
    return [v.strip() for v in raw.split(",") if v.strip()]
