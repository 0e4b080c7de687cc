"""Managers' verdicts on alerted feedback (issue 11 item 4): recorded with the text, language and
the scorer's result, one current per feedback (a later one replaces it, the history kept), scoped
like the other alert actions, never moving the alert's state; verdict links in each recipient's
mail; the trainer's labelled rows."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from services.alerts import queries, recovery, verdicts
from services.alerts.context import Actor
from services.alerts.domain import AlertNotFound, Forbidden, InvalidVerdict
from services.alerts.links import ALERT_LINK, ActionLink
from shared.signing import TokenInvalid
from tests.unit.alerts.world import ADMIN, START, fb

OPS = Actor("dm@example.com", teams=frozenset({"ops"}))
OPS_AM = Actor("am@example.com", teams=frozenset({"ops"}))
DESK = Actor("desk@example.com", teams=frozenset({"desk"}))
COMPLAINT = "前台等了四十分钟没人理，太失望了"


async def _alert(world):
    first = fb(text=COMPLAINT, location="plant-1", customer={"id": "c-1"})
    await world.consume(first)
    return first, world.alert_of(first)


async def test_a_verdict_keeps_the_text_language_and_scorers_result_and_moves_nothing(world):
    first, alert = await _alert(world)
    before = (alert.status, alert.state_version, alert.updated_at)
    world.clock.advance(minutes=3)
    made = await world.run(verdicts.record, alert.alert_id, verdict="false_alarm", actor=OPS, note="排队是常态")

    [stored] = world.repo.verdicts
    link = world.repo.links[first.id]
    assert stored == made
    assert (stored.feedback_id, stored.alert_id, stored.verdict, stored.decided_by, stored.via) == (
        first.id, alert.alert_id, "false_alarm", OPS.name, "api")
    assert (stored.text, stored.language, stored.decided_at, stored.replaced_at) == (
        COMPLAINT, link.language, START + timedelta(minutes=3), None)
    assert stored.score == {"mot": link.mot, "confidence": link.confidence, "p_negative": link.p_negative,
                            "forced_by": None, "cues": link.cues, "escalation": link.escalation}
    assert link.p_negative is not None and link.mot <= -1
    after = world.repo.alerts[alert.alert_id]
    assert (after.status, after.state_version, after.updated_at) == before  # a verdict is no move of the alert
    assert world.history(alert.alert_id) == ["raised", "verdict"]
    assert world.repo.events[-1].note == f"false_alarm on feedback {first.id}: 排队是常态"
    assert not world.outbox("alert.updated.v1")
    assert world.metric("keymoment_alerts_verdicts_total", verdict="false_alarm") == 1


async def test_a_later_verdict_replaces_the_current_one_and_the_history_stays(world):
    first, alert = await _alert(world)
    await world.run(verdicts.record, alert.alert_id, verdict="false_alarm", actor=OPS)
    world.clock.advance(hours=1)
    await world.run(verdicts.record, alert.alert_id, verdict="correct", actor=OPS_AM)
    world.clock.advance(hours=1)
    await world.run(verdicts.record, alert.alert_id, verdict="correct", actor=ADMIN, feedback_id=first.id)

    rows = [(v.verdict, v.decided_by, v.replaced_at) for v in world.repo.verdicts]
    assert rows == [("false_alarm", OPS.name, START + timedelta(hours=1)),
                    ("correct", OPS_AM.name, START + timedelta(hours=2)),
                    ("correct", "admin", None)]
    detail = await queries.alert_detail(world.repo, alert.alert_id, actor=OPS)
    assert [v.verdict_id for v in detail.verdicts] == [v.verdict_id for v in world.repo.verdicts]


async def test_a_verdict_is_scoped_like_the_other_alert_actions(world):
    first, alert = await _alert(world)
    with pytest.raises(Forbidden):
        await world.run(verdicts.record, alert.alert_id, verdict="correct", actor=DESK)
    with pytest.raises(Forbidden):
        await world.run(verdicts.record, alert.alert_id, verdict="correct", actor=Actor("nobody@example.com"))
    with pytest.raises(AlertNotFound):
        await world.run(verdicts.record, "no-such-alert", verdict="correct", actor=ADMIN)
    assert not world.repo.verdicts and world.history(alert.alert_id) == ["raised"]


async def test_only_feedback_the_alert_holds_as_negative_can_be_judged(world):
    first, alert = await _alert(world)
    world.clock.advance(minutes=1)
    grouped = fb(mot=-2, text="又等了半小时", location="plant-9", customer={"id": "c-1"})
    elsewhere = fb(mot=-1, location="desk-1")
    await world.consume(grouped, elsewhere)
    assert world.alert_of(grouped).alert_id == alert.alert_id

    made = await world.run(verdicts.record, alert.alert_id, verdict="correct", actor=OPS, feedback_id=grouped.id)
    assert (made.feedback_id, made.text, made.score["forced_by"]) == (grouped.id, "又等了半小时", "rating")
    for feedback_id in (elsewhere.id, "unknown"):
        with pytest.raises(InvalidVerdict):
            await world.run(verdicts.record, alert.alert_id, verdict="correct", actor=ADMIN, feedback_id=feedback_id)
    with pytest.raises(InvalidVerdict):
        await world.run(verdicts.record, alert.alert_id, verdict="maybe", actor=ADMIN)

    # a positive recovery answer is linked to the alert but alerted nothing: nothing to judge
    await world.run(recovery.resolve, alert.alert_id, actor=ADMIN)
    happy = fb(mot=3, channel="survey", customer={"id": "c-1"},
               survey={"survey_id": "recovery", "recovery_for_alert_id": alert.alert_id})
    await world.consume(happy)
    assert world.repo.links[happy.id].role == "recovery_answer"
    with pytest.raises(InvalidVerdict):
        await world.run(verdicts.record, alert.alert_id, verdict="false_alarm", actor=ADMIN, feedback_id=happy.id)
    assert len(world.repo.verdicts) == 1


async def test_each_mail_carries_verdict_links_on_its_newest_negative_feedback_that_any_state_accepts(world):
    first, alert = await _alert(world)
    world.clock.advance(minutes=1)
    grouped = fb(mot=-3, text="我要投诉", location="plant-1", customer={"id": "c-1"})
    await world.consume(grouped)  # worse: an update mail at once
    judged = {}
    for notification in world.repo.notifications.values():
        [mail] = world.repo.mails_of(notification.notification_id)
        tokens = re.findall(r"http://alerts\.test/l/(\S+)", mail.text)
        links = [ActionLink.verify(world.ctx.signer, t, now=world.clock.now()) for t in tokens]
        found = [(link.action, link.feedback_id, link.recipient) for link in links if link.is_verdict]
        judged[notification.kind] = found
        assert "Correct alert" in mail.text and "False alarm" in mail.text
    assert judged == {"raised": [("correct", first.id, "dm@example.com"), ("false_alarm", first.id, "dm@example.com")],
                      "update": [("correct", grouped.id, "dm@example.com"),
                                 ("false_alarm", grouped.id, "dm@example.com")]}

    # acknowledged meanwhile (state version 1): the link of the first mail still records its verdict
    await world.run(recovery.acknowledge, alert.alert_id, actor=OPS)
    made = await world.run(verdicts.record, alert.alert_id, verdict="false_alarm", actor=OPS,
                           feedback_id=first.id, via="email_link")
    assert (made.via, world.repo.alerts[alert.alert_id].state_version) == ("email_link", 1)


def test_a_verdict_link_names_its_feedback(world):
    signer, expires = world.ctx.signer, START + timedelta(days=1)
    token = ActionLink("n-1", "a-1", "dm@example.com", "false_alarm", 0, "f-1").sign(signer, expires_at=expires)
    link = ActionLink.verify(signer, token, now=START)
    assert (link.is_verdict, link.feedback_id) == (True, "f-1")
    unnamed = signer.sign(ALERT_LINK, {"n": "n-1", "a": "a-1", "r": "dm@example.com", "do": "correct", "v": 0},
                          expires_at=expires)
    with pytest.raises(TokenInvalid, match="without its feedback"):
        ActionLink.verify(signer, unnamed, now=START)
    assert not ActionLink.verify(
        signer, ActionLink("n-1", "a-1", "dm@example.com", "ack", 0).sign(signer, expires_at=expires), now=START
    ).is_verdict


async def test_training_rows_label_the_verdicts_for_the_trainer(world):
    first, alert = await _alert(world)
    assert world.repo.links[first.id].language == "zh"  # the scorer's, the feedback naming none
    made = await world.run(verdicts.record, alert.alert_id, verdict="false_alarm", actor=OPS)
    row = verdicts.training_row(made, source="tenant-42", industry="hotel")
    assert {k: row[k] for k in ("text", "label", "language", "source", "industry", "verdict", "feedback_id")} == {
        "text": COMPLAINT, "label": "not_negative", "language": "zh", "source": "tenant-42", "industry": "hotel",
        "verdict": "false_alarm", "feedback_id": first.id}
    assert row["scored"] == {"mot": made.score["mot"], "p_negative": made.score["p_negative"], "forced_by": None}
    made.verdict, made.language = "correct", "mixed"
    row = verdicts.training_row(made, source="alerts-verdicts")
    assert row["label"] == "negative" and "language" not in row and "industry" not in row
