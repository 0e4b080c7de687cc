"""Signed survey links: round trip, expiry, tampering, wrong survey, wrong key."""

from datetime import UTC, datetime, timedelta

import pytest

from services.survey.tokens import TokenError, TokenExpired, sign, verify

KEY = "k" * 32
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


def _token(**kw):
    args = {"survey_id": "recovery", "request_id": "req-1", "ttl": timedelta(days=7), "now": NOW} | kw
    return sign(KEY, **args)


def test_round_trip_carries_ids_and_expiry():
    claims = verify(KEY, _token(), survey_id="recovery", now=NOW)
    assert (claims.survey_id, claims.request_id) == ("recovery", "req-1")
    assert claims.expires_at == NOW + timedelta(days=7)


def test_expired_link_is_refused_as_expired():
    token = _token(ttl=timedelta(hours=1))
    verify(KEY, token, survey_id="recovery", now=NOW + timedelta(minutes=59))
    with pytest.raises(TokenExpired):
        verify(KEY, token, survey_id="recovery", now=NOW + timedelta(hours=1))


def test_a_changed_payload_breaks_the_signature():
    payload, mac = _token().split(".")
    forged = sign(KEY, survey_id="recovery", request_id="req-2", ttl=timedelta(days=7), now=NOW).split(".")[0]
    with pytest.raises(TokenError, match="signature"):
        verify(KEY, f"{forged}.{mac}", survey_id="recovery", now=NOW)


def test_another_key_or_survey_is_refused():
    with pytest.raises(TokenError, match="signature"):
        verify("other-key", _token(), survey_id="recovery", now=NOW)
    with pytest.raises(TokenError, match="another survey"):
        verify(KEY, _token(), survey_id="onboarding", now=NOW)


@pytest.mark.parametrize("token", ["", "no-dot", "a.b.c", "x" * 2000, "abc.!!!", "é.é"])
def test_malformed_links_are_token_errors_not_crashes(token):
    with pytest.raises(TokenError):
        verify(KEY, token, survey_id="recovery", now=NOW)


def test_an_empty_key_is_refused_when_signing():
    with pytest.raises(ValueError, match="forgeable"):
        sign("", survey_id="recovery", request_id="r", ttl=timedelta(days=1))


def test_token_carries_no_personal_data():
    import base64

    payload = _token().split(".")[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    assert set(__import__("json").loads(decoded)) == {"s", "r", "exp"}
