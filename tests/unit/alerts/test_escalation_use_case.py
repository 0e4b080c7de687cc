"""SLA escalation (``escalation.escalate_due``) on a ManualClock: the levels of a team in turn,
the timer re-armed while a next level exists, the last level, and acknowledgement stopping it."""

from __future__ import annotations

from datetime import timedelta

from services.alerts import escalation, recovery
from services.alerts.context import Actor, derived_id
from shared.events import ALERT_UPDATED
from tests.unit.alerts.world import START, fb


async def test_an_unacknowledged_alert_walks_the_levels_on_its_sla_until_the_last(world):
    tap = fb(mot=-3, location="plant-1")  # the default route: team ops, a -3 is due in 10 minutes
    await world.consume(tap)
    alert_id = world.alert_of(tap).alert_id
    assert world.alert_of(tap).sla_due_at == START + timedelta(minutes=10)

    world.clock.advance(minutes=9, seconds=59)
    assert await world.run(escalation.escalate_due) == []
    world.clock.advance(seconds=2)
    assert await world.run(escalation.escalate_due) == [alert_id]
    alert = world.repo.alerts[alert_id]
    assert (alert.escalation_level, alert.sla_breached) == (2, True)
    assert alert.sla_due_at == world.clock.now() + timedelta(minutes=10)  # level 3 exists: re-armed
    assert world.repo.notifications[derived_id(alert_id, "escalation", 2, 0)].recipients == ["am@example.com"]

    world.clock.advance(minutes=10)
    assert await world.run(escalation.escalate_due) == [alert_id]
    alert = world.repo.alerts[alert_id]
    assert (alert.escalation_level, alert.sla_due_at) == (3, None)  # the last level: nobody further
    assert world.repo.notifications[derived_id(alert_id, "escalation", 3, 0)].recipients == ["sm@example.com"]
    world.clock.advance(hours=5)
    assert await world.run(escalation.escalate_due) == []

    assert world.notifications(alert_id) == [
        ("raised", 1, 0, "pending"), ("escalation", 2, 0, "pending"), ("escalation", 3, 0, "pending")]
    assert [(e.action, e.note) for e in world.repo.events if e.alert_id == alert_id] == [
        ("raised", "route default"), ("sla_breached", "escalated to level 2"), ("sla_breached", "escalated to level 3")]
    updates = world.outbox(ALERT_UPDATED.type)
    assert [e.id for e in updates] == [derived_id("sla", alert_id, 2), derived_id("sla", alert_id, 3)]
    assert all(e.data.sla_breached and e.data.actor == "system:sla" for e in updates)
    assert world.metric("keymoment_alerts_sla_breaches_total", severity="-3") == 1  # one breach, two escalations


async def test_a_team_with_one_level_records_the_breach_and_stops_the_timer(world):
    tap = fb(mot=-2, location="desk-4")  # team desk: one level; a -2 is due in an hour
    await world.consume(tap)
    alert_id = world.alert_of(tap).alert_id
    world.clock.advance(hours=1)
    assert await world.run(escalation.escalate_due) == [alert_id]
    alert = world.repo.alerts[alert_id]
    assert (alert.escalation_level, alert.sla_breached, alert.sla_due_at) == (1, True, None)
    assert world.notifications(alert_id) == [("raised", 1, 0, "pending")]  # nobody to mail at level 2
    assert world.repo.events[-1].note == "no further escalation level"
    world.clock.advance(days=1)
    assert await world.run(escalation.escalate_due) == []


async def test_the_earliest_due_alerts_go_first_a_round_at_a_time(world):
    taps = [fb(mot=-3, location=f"plant-{i}") for i in range(3)]
    for tap in taps:
        await world.consume(tap)
        world.clock.advance(minutes=1)
    world.clock.advance(minutes=30)
    first = await world.run(escalation.escalate_due, limit=2)
    assert first == [world.alert_of(t).alert_id for t in taps[:2]]
    assert await world.run(escalation.escalate_due, limit=2) == [world.alert_of(taps[2]).alert_id]


async def test_acknowledging_stops_the_timer(world):
    tap = fb(mot=-3, location="plant-1")
    await world.consume(tap)
    alert_id = world.alert_of(tap).alert_id
    world.clock.advance(minutes=4)
    acked = await world.run(recovery.acknowledge, alert_id, actor=Actor("DM@example.com", teams=frozenset({"ops"})), note="on it")
    assert (acked.status, acked.sla_due_at, acked.acknowledged_by) == ("acknowledged", None, "DM@example.com")
    world.clock.advance(hours=3)
    assert await world.run(escalation.escalate_due) == []
    assert world.repo.alerts[alert_id].escalation_level == 1
    assert world.metric("keymoment_alerts_time_to_acknowledge_seconds_sum", severity="-3") == 240
