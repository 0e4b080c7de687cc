"""Pseudonyms of customer contacts.

Wherever a contact is used as a *key* (Kafka partition keys, lookup columns such as
a customer's history or a suppression list), it is replaced by a keyed hash
(HMAC-SHA256 under ``PRIVACY_HASH_KEY``) of its normalised form: the key still
groups and finds the same customer, but it reveals no address or number, and
without the key nobody can test a list of addresses against it.

The same contact always gives the same pseudonym under one key, so the key must not
change while data keyed by it is kept (rotating it splits every customer's history
in two: old pseudonyms no longer match new ones).

Erasure (``erasure.requested.v1``) and its plumbing live in :mod:`shared.privacy.erasure`;
a service including :class:`PrivacySettings` gets the tables it needs (migration
component ``privacy``: ``erasures``, ``erased_subjects``). What is stored where, and
for how long, is ``PRIVACY.md``.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ContactKind = Literal["id", "email", "phone"]

# The same configuration as ServiceSettings': a mixin's own config would override it.
_CONFIG = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False, hide_input_in_errors=True)

DEV_PRIVACY_HASH_KEY = "dev-privacy-hash-key-not-for-production"

PSEUDONYM_PATTERN = r"^(id|email|phone):[0-9a-f]{32}$"
"""The shape of what :func:`pseudonym` returns: ``<kind>:<32 hex digits>``."""
_PSEUDONYM = re.compile(PSEUDONYM_PATTERN)

PRIVACY_COMPONENT = ("privacy", Path(__file__).parent / "migrations")

ERASING_SERVICES = ("intake", "survey", "alerts", "reporting")
"""The services that apply every erasure and report what they erased (``erasure.applied.v1``);
an erasure is done when each of them has reported."""


def normalise_contact(kind: ContactKind, value: str) -> str:
    """The form two spellings of one contact share: e-mail lower-cased, a phone number's
    digits (and a leading +), an id as given (trimmed)."""
    value = value.strip()
    if kind == "email":
        return value.lower()
    if kind == "phone":
        return "".join(ch for ch in value if ch.isdigit() or ch == "+")
    return value


def pseudonym(key: bytes, kind: ContactKind, value: str) -> str:
    """``<kind>:<32 hex digits>``: the keyed hash of a normalised contact (128 bits)."""
    mac = _keyed(key).copy()  # the key's HMAC state, set up once per key (intake's hot path)
    mac.update(f"{kind}:{normalise_contact(kind, value)}".encode())
    return f"{kind}:{mac.hexdigest()[:32]}"


@functools.lru_cache(maxsize=8)
def _keyed(key: bytes) -> hmac.HMAC:
    if not key:
        raise ValueError("a pseudonym needs a non-empty key")
    return hmac.new(key, digestmod=hashlib.sha256)


def is_pseudonym(value: str) -> bool:
    return _PSEUDONYM.match(value) is not None


def pseudonyms_of(key: bytes, contacts: Iterable[tuple[ContactKind, str | None]]) -> list[str]:
    """The pseudonyms of the contacts given (empty values skipped), in order, without repeats."""
    out: list[str] = []
    for kind, value in contacts:
        if value and value.strip() and (p := pseudonym(key, kind, value)) not in out:
            out.append(p)
    return out


class PrivacySettings(BaseSettings):
    """Included by the settings of every service that keys data by a customer contact
    (intake: Kafka keys; alerts: customer history; survey: suppression list) or takes
    erasure requests (reporting). A service including it must list ``privacy_hash_key`` in
    its ``required_secrets``; it gets migration component ``privacy`` (the erasures it
    applied, the erased customers' pseudonyms)."""

    model_config = _CONFIG
    migration_component: ClassVar[tuple[str, Path]] = PRIVACY_COMPONENT

    privacy_hash_key: SecretStr | None = Field(
        None,
        description="HMAC-SHA256 key pseudonymising customer contacts used as keys (Kafka partition keys, customer "
        "history, suppression list, erasure requests); the same in every service, never rotated while that data is "
        "kept (required outside dev/test).",
    )
    privacy_dev_defaults: ClassVar[dict[str, str]] = {"privacy_hash_key": DEV_PRIVACY_HASH_KEY}

    def privacy_key(self) -> bytes:
        assert self.privacy_hash_key is not None  # required, or filled with the dev default
        return self.privacy_hash_key.get_secret_value().encode()
