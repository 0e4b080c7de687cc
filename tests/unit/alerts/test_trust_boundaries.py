"""Alerts' trust boundaries (issue 14 item 4): recovery answers only from survey's own events;
one mail per recipient whose links name that recipient and the alert's state version, refused
on a newer state; links of before, and keys rotated, per purpose."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import re
from datetime import timedelta

import pytest
from services.alerts import escalation, recovery
from services.alerts.context import Actor
from services.alerts.domain import InvalidTransition, StateChanged
from services.alerts.links import ALERT_LINK, MANAGER_TOKEN, ActionLink, OldLink
from shared.signing import Signer, TokenInvalid
from tests.unit.alerts.world import ADMIN, START, fb

# An id no uuid in the log record can contain by chance ("c-7" could: "…c-7…" in a uuid, a few runs in a hundred)
CUSTOMER = {"id": "CUST-7", "email": "li.wei@example.cn", "name": "李伟"}
OPS = Actor("dm@example.com", teams=frozenset({"ops"}))


def _answer(alert_id: str, mot: int, text: str | None = None):
    return fb(mot=mot, channel="survey", customer=CUSTOMER, text=text,
              survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id})


async def _resolved(world) -> str:
    complaint = fb(mot=-2, location="plant-1", customer=CUSTOMER)
    await world.consume(complaint)
    alert_id = world.alert_of(complaint).alert_id
    await world.run(recovery.resolve, alert_id, actor=ADMIN)
    return alert_id


async def test_a_recovery_answer_not_from_survey_is_ordinary_feedback_and_logged_without_personal_data(
    world, caplog
):
    alert_id = await _resolved(world)
    forged = _answer(alert_id, -3, text="我要投诉 12315")
    with caplog.at_level(logging.WARNING, logger="services.alerts.feedback"):
        await world.consume(forged, source="/keymoment/intake")  # an API key allowed the survey channel

    assert world.repo.alerts[alert_id].status == "resolved"  # not reopened
    assert world.alert_of(forged).alert_id != alert_id and world.repo.links[forged.id].role == "raised"
    [record] = [r for r in caplog.records if "recovery answer not from survey" in r.getMessage()]
    assert (record.feedback_id, record.source, record.alert_id) == (forged.id, "/keymoment/intake", alert_id)
    logged = json.dumps({k: str(v) for k, v in vars(record).items()}, ensure_ascii=False)
    assert not any(secret in logged for secret in ("li.wei@example.cn", "李伟", "12315", "CUST-7"))


async def test_a_positive_recovery_answer_not_from_survey_is_not_recorded_on_the_alert(world):
    alert_id = await _resolved(world)
    await world.consume(_answer(alert_id, 3), source="/intake")
    assert world.history(alert_id) == ["raised", "resolved", "recovery_survey_requested"]


async def test_surveys_own_recovery_answer_reopens(world):
    alert_id = await _resolved(world)
    await world.consume(_answer(alert_id, -2), source="/keymoment/survey")
    assert world.repo.alerts[alert_id].status == "reopened"


async def test_every_recipient_gets_a_mail_whose_links_name_them_and_the_state(world):
    tap = fb(mot=-3, location="duo-1")  # team duo: two delivery managers, then the account manager
    await world.consume(tap)
    alert = world.alert_of(tap)
    [raised] = world.repo.notifications.values()
    assert raised.recipients == ["d1@example.com", "d2@example.com"]
    world.clock.advance(minutes=16)
    await world.run(escalation.escalate_due)
    assert len(world.repo.notifications) == 2 and len(world.repo.mails) == 3
    for notification in world.repo.notifications.values():
        mails = world.repo.mails_of(notification.notification_id)
        assert [m.recipient for m in mails] == notification.recipients  # one mail each
        assert len({m.message_id for m in mails}) == len(mails)
        for mail in mails:
            tokens = re.findall(r"http://alerts\.test/l/(\S+)", mail.text)
            # acknowledge, explore, resolve, and (issue 11) the verdicts on the feedback: correct, false alarm
            assert tokens and len(tokens) == 5
            links = [ActionLink.verify(world.ctx.signer, token, now=world.clock.now()) for token in tokens]
            for link in links:
                assert (link.notification_id, link.alert_id, link.recipient, link.version) == (
                    notification.notification_id, alert.alert_id, mail.recipient, 0)
            assert [(link.action, link.feedback_id) for link in links] == [
                ("ack", None), ("explore", None), ("resolve", None), ("correct", tap.id), ("false_alarm", tap.id)]
            assert world.repo.mails[mail.mail_id][1].count(b"To: ") == 1


async def test_the_state_version_moves_with_the_status_and_a_link_for_an_older_state_acts_on_nothing(world):
    alert_id = await _resolved(world)
    assert world.repo.alerts[alert_id].state_version == 1  # resolved (its first change of status)
    await world.consume(_answer(alert_id, -2))
    reopened = world.repo.alerts[alert_id]
    assert (reopened.status, reopened.state_version) == ("reopened", 2)

    # a "resolve" link of the first mail (version 0) cannot close the reopened alert
    with pytest.raises(StateChanged) as stale:
        await world.run(recovery.apply_action, alert_id, action="resolve", actor=OPS, expected_version=0)
    assert (stale.value.version, stale.value.current, stale.value.status) == (0, 2, "reopened")
    assert isinstance(stale.value, InvalidTransition)  # a 409, like every refused move
    assert world.repo.alerts[alert_id].status == "reopened"
    # the reopened mail's link (version 2) may
    assert (await world.run(recovery.apply_action, alert_id, action="ack", actor=OPS,
                            expected_version=2)).state_version == 3


async def test_the_reopened_mail_carries_links_for_the_reopened_state(world):
    alert_id = await _resolved(world)
    await world.consume(_answer(alert_id, -2))
    reopened = next(n for n in world.repo.notifications.values() if n.kind == "reopened")
    [mail] = world.repo.mails_of(reopened.notification_id)
    versions = {ActionLink.verify(world.ctx.signer, t, now=world.clock.now()).version
                for t in re.findall(r"/l/(\S+)", mail.text)}
    assert versions == {2}


def _old_alerts_token(key: bytes, prefix: str, claims: dict) -> str:
    """A token as alerts signed them before shared.signing: ``<prefix>.<payload>.<mac>``."""
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    body = b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{prefix}.{body}.{b64(hmac.new(key, f'{prefix}.{body}'.encode(), hashlib.sha256).digest())}"


def test_links_and_tokens_signed_before_still_verify_and_old_links_act_no_more():
    key = b"dev-link-signing-key-not-for-production"
    expires = int((START + timedelta(days=1)).timestamp())
    signer = Signer(key)
    old_link = _old_alerts_token(key, "l1", {"n": "n-1", "a": "a-1", "do": "ack", "exp": expires})
    assert signer.verify(ALERT_LINK, old_link, now=START)["do"] == "ack"
    with pytest.raises(OldLink):  # genuine, but it names neither its recipient nor the alert's state
        ActionLink.verify(signer, old_link, now=START)
    old_token = _old_alerts_token(key, "m1", {"t": "t-1", "e": "dm@example.com", "exp": expires})
    assert signer.verify(MANAGER_TOKEN, old_token, now=START)["e"] == "dm@example.com"


def test_alert_links_and_manager_tokens_each_have_a_key_and_a_rotated_one_verifies_until_retired(make_world):
    before = make_world(link_signing_key="shared-key")
    link = ActionLink("n-1", "a-1", "dm@example.com", "ack", 0)
    token = link.sign(before.ctx.settings.signer(), expires_at=START + timedelta(days=1))

    # alert links get a key of their own; the shared key stays verify-only for them until their links expire
    rotated = make_world(link_signing_key="shared-key", alerts_link_signing_key="links-2026",
                         alerts_link_signing_old_keys="shared-key").ctx.settings.signer()
    assert ActionLink.verify(rotated, token, now=START) == link
    fresh = link.sign(rotated, expires_at=START + timedelta(days=1))
    with pytest.raises(TokenInvalid):  # the shared key no longer makes alert links
        ActionLink.verify(before.ctx.settings.signer(), fresh, now=START)

    retired = make_world(link_signing_key="shared-key", alerts_link_signing_key="links-2026").ctx.settings.signer()
    with pytest.raises(TokenInvalid, match="unknown key"):
        ActionLink.verify(retired, token, now=START)
    assert ActionLink.verify(retired, fresh, now=START) == link
    # manager tokens kept LINK_SIGNING_KEY: a key leaked from the links cannot make one
    manager = retired.sign(MANAGER_TOKEN, {"sub": "dm@example.com", "scp": []}, expires_at=START + timedelta(days=1))
    assert Signer("shared-key").verify(MANAGER_TOKEN, manager, now=START)["sub"] == "dm@example.com"
    with pytest.raises(TokenInvalid):
        Signer("links-2026").verify(MANAGER_TOKEN, manager, now=START)


def test_the_signing_settings_refuse_a_key_listed_as_its_own_old_key(make_world):
    world = make_world(alerts_manager_token_signing_key="m", alerts_manager_token_signing_old_keys="m")
    with pytest.raises(ValueError, match="ALERTS_MANAGER_TOKEN_SIGNING_KEY and its old keys"):
        world.ctx.settings.signer()  # create_app builds it: the service does not start
