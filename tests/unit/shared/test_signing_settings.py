"""The signing settings fragment: LINK_SIGNING_KEY and its verify-only old keys, keys per
purpose falling back to it, and a rotated key verifying what it signed until it is retired."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from shared.signing import Keyring, Purpose, SigningKey, SigningSettings, TokenInvalid

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(days=7)
LINK = Purpose("test-link")


def _settings(**values: str) -> SigningSettings:
    return SigningSettings(**values)


def test_a_rotated_key_still_verifies_old_links_until_it_is_retired():
    before = _settings(link_signing_key="key-2025").signer()
    old_link = before.sign(LINK, {"id": "r-1"}, expires_at=LATER)

    rotated = _settings(link_signing_key="key-2026", link_signing_old_keys="key-2025").signer()
    assert rotated.verify(LINK, old_link, now=NOW)["id"] == "r-1"  # handed out before: still good
    new_link = rotated.sign(LINK, {"id": "r-2"}, expires_at=LATER)
    assert new_link.rsplit(".", 1)[1].startswith(SigningKey.of("key-2026").kid)  # signed with the new key
    with pytest.raises(TokenInvalid):
        before.verify(LINK, new_link, now=NOW)

    retired = _settings(link_signing_key="key-2026").signer()
    with pytest.raises(TokenInvalid, match="unknown key"):
        retired.verify(LINK, old_link, now=NOW)
    assert retired.verify(LINK, new_link, now=NOW)["id"] == "r-2"


def test_old_keys_are_a_comma_separated_list_and_blanks_are_ignored():
    ring = _settings(link_signing_key="k3", link_signing_old_keys=" k2 , ,k1").keyring()
    assert [k.kid for k in ring.keys] == [SigningKey.of(k).kid for k in ("k3", "k2", "k1")]


def test_a_purpose_key_falls_back_to_link_signing_key_and_its_old_keys():
    s = _settings(link_signing_key="shared", link_signing_old_keys="shared-2025")
    assert s.keyring() == s.keyring(None, None)
    own = s.keyring(SecretStr("own"), SecretStr("shared"), name="X_SIGNING_KEY")
    assert [k.kid for k in own.keys] == [SigningKey.of("own").kid, SigningKey.of("shared").kid]
    # without a key of its own but with old keys: the default ring plus those
    fallback = s.keyring(None, SecretStr("own-2024"))
    assert [k.kid for k in fallback.keys] == [SigningKey.of(k).kid for k in ("shared", "shared-2025", "own-2024")]


def test_a_key_listed_as_its_own_old_key_is_refused_by_name():
    with pytest.raises(ValueError, match="X_SIGNING_KEY and its old keys: two signing keys share an id"):
        _settings(link_signing_key="k").keyring(SecretStr("own"), SecretStr("own"), name="X_SIGNING_KEY")


def test_without_link_signing_key_there_is_no_default_keyring():
    with pytest.raises(ValueError, match="LINK_SIGNING_KEY must be set"):
        _settings().keyring()
    assert _settings().keyring(SecretStr("own")) == Keyring.of("own")  # a purpose with a key of its own needs none
