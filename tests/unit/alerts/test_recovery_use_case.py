"""The MOT recovery loop (``recovery``): steps in order, resolve asking a recovery survey, and
the customer's answer recorded (positive) or reopening the alert (negative)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.alerts import recovery
from services.alerts.context import Actor, derived_id
from services.alerts.domain import AlertNotFound, Forbidden, InvalidTransition
from shared.events import ALERT_UPDATED, SURVEY_REQUESTED
from tests.unit.alerts.world import ADMIN, fb

MANAGER = Actor("dm@example.com", teams=frozenset({"ops"}))
CUSTOMER = {"id": "c-7", "email": "li.wei@example.cn"}


async def _raised(world, **kwargs) -> str:
    complaint = fb(mot=-2, channel="phone", location="call-centre", **kwargs)
    await world.consume(complaint)
    return world.alert_of(complaint).alert_id


def _answer(alert_id: str, mot: int):
    return fb(mot=mot, channel="survey", customer=CUSTOMER,
              survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id})


async def test_the_loop_goes_in_order_and_resolving_asks_the_customer_a_recovery_survey(world):
    alert_id = await _raised(world, customer=CUSTOMER)
    with pytest.raises(InvalidTransition) as skipped:
        await world.run(recovery.transition, alert_id, step="offer", actor=MANAGER)
    assert skipped.value.status == "open"
    world.clock.advance(minutes=3)
    for step in ("explore", "offer", "action", "confirm"):
        moved = await world.run(recovery.transition, alert_id, step=step, actor=MANAGER, note=f"{step} done")
        assert moved.status == step
    with pytest.raises(InvalidTransition):
        await world.run(recovery.transition, alert_id, step="explore", actor=MANAGER)
    with pytest.raises(InvalidTransition):
        await world.run(recovery.acknowledge, alert_id, actor=MANAGER)
    resolved = await world.run(recovery.resolve, alert_id, actor=MANAGER, note="refund given")
    with pytest.raises(InvalidTransition):
        await world.run(recovery.resolve, alert_id, actor=MANAGER)

    stored = world.repo.alerts[alert_id]
    assert (stored.status, stored.resolved_by, stored.resolved_at) == ("resolved", MANAGER.name, world.clock.now())
    assert (stored.acknowledged_by, stored.acknowledged_at) == (MANAGER.name, world.clock.now())  # by the first step
    assert resolved.status == "resolved"
    assert world.history(alert_id) == [
        "raised", "explore", "offer", "action", "confirm", "resolved", "recovery_survey_requested"]
    [survey] = world.outbox(SURVEY_REQUESTED.type)
    assert survey.id == derived_id("recovery-survey", alert_id, 0)
    assert (survey.data.kind, survey.data.alert_id, survey.data.customer.email) == ("recovery", alert_id, CUSTOMER["email"])
    assert [e.data.status.value for e in world.outbox(ALERT_UPDATED.type)] == [
        "explore", "offer", "action", "confirm", "resolved"]


async def test_resolving_without_a_customer_email_asks_no_survey(world):
    alert_id = await _raised(world, customer={"id": "c-8"})
    await world.run(recovery.apply_action, alert_id, action="resolve", actor=ADMIN)
    assert world.history(alert_id) == ["raised", "resolved"] and not world.outbox(SURVEY_REQUESTED.type)


async def test_only_the_team_may_act_and_only_on_alerts_that_exist(world):
    alert_id = await _raised(world)
    with pytest.raises(Forbidden):
        await world.run(recovery.acknowledge, alert_id, actor=Actor("someone@example.com"))
    with pytest.raises(AlertNotFound):
        await world.run(recovery.acknowledge, "no-such-alert", actor=ADMIN)
    assert world.repo.alerts[alert_id].status == "open" and world.history(alert_id) == ["raised"]


async def test_a_negative_recovery_answer_reopens_the_alert_and_tells_the_team(world):
    alert_id = await _raised(world, customer=CUSTOMER)
    await world.run(recovery.resolve, alert_id, actor=MANAGER)
    world.clock.advance(days=2)
    answer = _answer(alert_id, -2)
    await world.consume(answer)

    alert = world.repo.alerts[alert_id]
    assert (alert.status, alert.reopen_count, alert.resolved_at, alert.resolved_by) == ("reopened", 1, None, None)
    assert (alert.feedback_count, alert.escalation_level) == (2, 1)
    assert alert.sla_due_at == world.clock.now() + timedelta(hours=1)  # a -2 is due in an hour again
    assert world.repo.links[answer.id].role == "recovery_answer"
    assert world.history(alert_id)[-1] == "reopened"
    assert [n[0] for n in world.notifications(alert_id)] == ["raised", "reopened"]
    reopened = world.outbox(ALERT_UPDATED.type)[-1]
    assert (reopened.data.previous_status.value, reopened.data.status.value) == ("resolved", "reopened")
    assert reopened.id == derived_id("updated", alert_id, answer.id)
    assert world.metric("keymoment_alerts_reopened_total") == 1
    # resolved again, the next recovery survey is another request
    await world.run(recovery.resolve, alert_id, actor=MANAGER)
    assert [e.id for e in world.outbox(SURVEY_REQUESTED.type)] == [
        derived_id("recovery-survey", alert_id, 0), derived_id("recovery-survey", alert_id, 1)]


async def test_a_positive_recovery_answer_is_recorded_and_the_alert_stays_resolved(world):
    alert_id = await _raised(world, customer=CUSTOMER)
    await world.run(recovery.resolve, alert_id, actor=MANAGER)
    answer = _answer(alert_id, 3)
    await world.consume(answer)

    alert = world.repo.alerts[alert_id]
    assert (alert.status, alert.reopen_count, alert.feedback_count) == ("resolved", 0, 1)
    assert world.repo.links[answer.id].role == "recovery_answer"
    last = world.repo.events[-1]
    assert (last.action, last.actor, last.note) == ("recovery_answer", "customer", "MOT +3")
    assert [n[0] for n in world.notifications(alert_id)] == ["raised"]


async def test_a_reopened_alert_is_joined_by_the_customers_next_complaint_in_the_same_batch(world):
    alert_id = await _raised(world, customer=CUSTOMER)
    await world.run(recovery.resolve, alert_id, actor=MANAGER)
    world.clock.advance(hours=1)
    complaint = fb(mot=-3, location="store-2", customer=CUSTOMER)
    await world.consume(_answer(alert_id, -1), complaint)

    assert list(world.repo.alerts) == [alert_id]  # the reopening is seen before it is written
    alert = world.repo.alerts[alert_id]
    assert (alert.status, alert.feedback_count, alert.severity) == ("reopened", 3, -3)
    assert world.history(alert_id)[-2:] == ["reopened", "grouped"]


async def test_an_answer_for_an_unknown_alert_is_an_ordinary_feedback(world):
    answer = _answer("gone", -2)
    await world.consume(answer)
    assert world.alert_of(answer).feedback_id == answer.id and world.repo.links[answer.id].role == "raised"
