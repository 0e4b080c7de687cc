"""Signed tokens, the recovery-loop rules and silence matching (pure functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.alerts import domain, silences
from services.alerts.links import ALERT_LINK as LINK
from services.alerts.links import MANAGER_TOKEN as MANAGER
from shared.signing import Signer, TokenExpired, TokenInvalid

NOW = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


def test_tokens_round_trip_and_reject_tampering_expiry_and_wrong_purpose():
    signer = Signer(b"k" * 32)
    token = signer.sign(LINK, {"a": "alert-1", "do": "ack"}, expires_at=NOW + timedelta(hours=1))
    assert signer.verify(LINK, token, now=NOW)["do"] == "ack"
    head, body, mac = token.split(".")
    forged_body = Signer(b"k" * 32).sign(LINK, {"a": "alert-2", "do": "resolve"}, expires_at=NOW + timedelta(hours=1))
    with pytest.raises(TokenInvalid):
        signer.verify(LINK, f"{head}.{forged_body.split('.')[1]}.{mac}", now=NOW)
    with pytest.raises(TokenInvalid):
        Signer(b"other-key").verify(LINK, token, now=NOW)
    with pytest.raises(TokenInvalid):
        signer.verify(MANAGER, token, now=NOW)  # a link is not an API token
    with pytest.raises(TokenExpired):
        signer.verify(LINK, token, now=NOW + timedelta(hours=1))
    with pytest.raises(TokenInvalid):
        signer.verify(LINK, "l1.garbage", now=NOW)


def _alert(status: str) -> domain.Alert:
    return domain.Alert(
        alert_id="a", feedback_id="f", severity=-2, status=status, channel="kiosk", location="store-1",
        touchpoint=None, customer_key=None, customer=None, language=None, summary="s", route="r", team="t",
        recipients=[], silence_id=None, raised_at=NOW, sla_due_at=None, escalation_level=1, sla_breached=False,
        acknowledged_at=None, acknowledged_by=None, resolved_at=None, resolved_by=None, reopen_count=0,
        feedback_count=1, last_feedback_at=NOW, last_notified_at=None, updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("status", "allowed"),
    [
        ("open", {"ack", "explore", "resolve"}),
        ("reopened", {"ack", "explore", "resolve"}),
        ("acknowledged", {"explore", "resolve"}),
        ("explore", {"offer", "resolve"}),
        ("offer", {"action", "resolve"}),
        ("action", {"confirm", "resolve"}),
        ("confirm", {"resolve"}),
        ("resolved", set()),
    ],
)
def test_recovery_loop_moves(status, allowed):
    possible = set()
    for action in ("ack", "explore", "offer", "action", "confirm", "resolve"):
        check = {"ack": domain.check_ack, "resolve": domain.check_resolve}.get(action)
        try:
            check(_alert(status)) if check else domain.check_step(_alert(status), action)
        except domain.InvalidTransition:
            continue
        possible.add(action)
    assert possible == allowed


def test_silence_matchers_are_globs_and_all_must_match():
    kwargs = dict(location="PEK-T3", touchpoint="Baggage", channel="kiosk", severity=-2, team="airport-ground")
    assert silences.silence_matches({"location": "pek-*"}, **kwargs)
    assert silences.silence_matches({"location": ["PVG-*", "PEK-*"], "touchpoint": "bag*", "severity": [-2]}, **kwargs)
    assert not silences.silence_matches({"location": "PEK-*", "severity": [-3]}, **kwargs)
    assert not silences.silence_matches({"team": "retail-*"}, **kwargs)
    assert not silences.silence_matches({"touchpoint": "gate"}, **{**kwargs, "touchpoint": None})


def test_summary_is_one_short_line():
    assert domain.summarise("  排队\n四十分钟  ", channel="kiosk", mot=-2) == "排队 四十分钟"
    assert len(domain.summarise("x" * 500, channel="web", mot=-1)) == 80
    assert domain.summarise(None, channel="kiosk", mot=-3) == "kiosk MOT -3"
