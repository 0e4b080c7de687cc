"""The one signer: purpose binding, expiry, key ids and rotation, per-purpose keys,
tokens signed before key ids existed."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from shared.signing import Keyring, Purpose, Signer, SigningKey, TokenExpired, TokenInvalid

NOW = datetime(2026, 6, 1, 8, 0, tzinfo=UTC)
LATER = NOW + timedelta(hours=1)
LINK = Purpose("test-link")
API = Purpose("test-api", tag="t1")


def test_round_trip_carries_claims_and_expiry_and_names_its_key():
    signer = Signer("secret-one")
    token = signer.sign(LINK, {"id": "a-1", "名": "李"}, expires_at=LATER)
    payload, signature = token.split(".")
    assert signature.removesuffix(signature[-43:]) == SigningKey.of("secret-one").kid
    assert re.fullmatch(r"[A-Za-z0-9_.-]+", token)  # URL-safe: plain-text mail link-finders keep it whole
    assert signer.verify(LINK, token, now=NOW) == {"id": "a-1", "名": "李", "exp": int(LATER.timestamp())}
    with pytest.raises(TokenExpired):
        signer.verify(LINK, token, now=LATER)
    assert issubclass(TokenExpired, TokenInvalid)  # callers that only care "usable or not" catch one class


def test_a_token_of_one_purpose_never_verifies_as_another():
    signer = Signer("same-key")
    with pytest.raises(TokenInvalid):
        signer.verify(Purpose("other-link"), signer.sign(LINK, {"id": "x"}, expires_at=LATER), now=NOW)
    api_token = signer.sign(API, {"sub": "x"}, expires_at=LATER)
    assert api_token.startswith("t1.")
    with pytest.raises(TokenInvalid, match="not a test-other token"):
        signer.verify(Purpose("test-other", tag="t2"), api_token, now=NOW)
    with pytest.raises(TokenInvalid):  # the tag stripped: a different purpose's input
        signer.verify(LINK, api_token.removeprefix("t1."), now=NOW)


def test_rotation_old_key_verifies_until_retired():
    old = Signer("key-2025")
    token = old.sign(LINK, {"id": "a"}, expires_at=LATER)
    rotated = Signer(Keyring.of("key-2026", "key-2025"))
    assert rotated.verify(LINK, token, now=NOW)["id"] == "a"
    new_token = rotated.sign(LINK, {"id": "b"}, expires_at=LATER)
    assert new_token.split(".")[1].startswith(SigningKey.of("key-2026").kid)
    with pytest.raises(TokenInvalid, match="unknown key"):
        old.verify(LINK, new_token, now=NOW)  # a replica not rotated yet refuses, it does not guess
    retired = Signer(Keyring.of("key-2026"))
    with pytest.raises(TokenInvalid, match="unknown key"):
        retired.verify(LINK, token, now=NOW)


def test_one_keyring_per_purpose():
    signer = Signer("shared-key", per_purpose={API.name: Keyring.of(SigningKey.of("api-key", kid="api-2026"))})
    api_token = signer.sign(API, {"sub": "m"}, expires_at=LATER)
    assert ".api-2026" in api_token
    assert signer.verify(API, api_token, now=NOW)["sub"] == "m"
    assert Signer("shared-key").verify(LINK, signer.sign(LINK, {"id": 1}, expires_at=LATER), now=NOW)["id"] == 1
    with pytest.raises(TokenInvalid):
        Signer("shared-key").verify(API, api_token, now=NOW)


def test_tampering_is_refused():
    signer = Signer("k" * 32)
    payload, signature = signer.sign(LINK, {"id": "a"}, expires_at=LATER).split(".")
    other_payload = signer.sign(LINK, {"id": "b"}, expires_at=LATER).split(".")[0]
    with pytest.raises(TokenInvalid, match="signature does not match"):
        signer.verify(LINK, f"{other_payload}.{signature}", now=NOW)
    kid, mac = signature[:-43], signature[-43:]
    flipped = ("A" if mac[0] != "A" else "B") + mac[1:]
    with pytest.raises(TokenInvalid, match="signature does not match"):
        signer.verify(LINK, f"{payload}.{kid}{flipped}", now=NOW)


@pytest.mark.parametrize("token", ["", ".", "a.b.c", "x" * 5000, "abc.!!!", "é.é", "abc." + "k" * 50, "abc.~~~", "t1"])
def test_malformed_tokens_are_token_errors_not_crashes(token):
    with pytest.raises(TokenInvalid):
        Signer("k").verify(LINK, token, now=NOW)
    with pytest.raises(TokenInvalid):
        Signer("k").verify(API, token, now=NOW)


def test_a_signed_payload_that_is_not_an_object_with_exp_is_refused():
    key = SigningKey.of("k")

    def forge(body: bytes) -> str:
        payload = base64.urlsafe_b64encode(body).rstrip(b"=").decode()
        mac = hmac.new(key.secret, LINK.domain + payload.encode(), hashlib.sha256).digest()
        return f"{payload}.{key.kid}{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"

    for body in (b"[1, 2]", b'"exp"', b'{"id": 1}', b'{"exp": "soon"}', b"\xff"):
        with pytest.raises(TokenInvalid, match="damaged payload"):
            Signer(Keyring(key)).verify(LINK, forge(body), now=NOW)


def test_tokens_signed_before_key_ids_still_verify_with_any_key_of_the_ring():
    """The format before key ids: ``payload.mac`` with the same MAC input."""
    payload = base64.urlsafe_b64encode(json.dumps({"id": "old", "exp": int(LATER.timestamp())}).encode())
    payload = payload.rstrip(b"=").decode()
    mac = hmac.new(b"key-2025", LINK.domain + payload.encode(), hashlib.sha256).digest()
    legacy = f"{payload}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    assert Signer(Keyring.of("key-2026", "key-2025")).verify(LINK, legacy, now=NOW)["id"] == "old"
    with pytest.raises(TokenInvalid, match="signature does not match"):
        Signer("key-2026").verify(LINK, legacy, now=NOW)


def test_keys_and_purposes_are_checked_when_made():
    assert SigningKey.of("same").kid == SigningKey.of(b"same").kid != SigningKey.of("other").kid
    with pytest.raises(ValueError, match="forgeable"):
        SigningKey.of("")
    with pytest.raises(ValueError, match="key id"):
        SigningKey.of("k", kid="has.dot")
    with pytest.raises(ValueError, match="share an id"):
        Keyring.of(SigningKey.of("a", kid="x"), SigningKey.of("b", kid="x"))
    with pytest.raises(ValueError, match="end"):
        Purpose("p", domain=b"no-dot")
    assert Purpose("survey-link").domain == b"keymoment.survey-link.v1."
    assert "secret" not in repr(SigningKey.of("secret"))
