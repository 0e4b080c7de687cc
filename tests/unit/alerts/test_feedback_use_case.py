"""Scoring a batch and raising / grouping its negative feedback (``feedback.score_batch``) with
the in-memory repository: grouping by customer, by place inside and outside the window, and a
whole batch written once, published concurrently and acknowledged before it returns."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.alerts.context import derived_id
from shared.errors import PermanentError, PublishUnavailable
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_SCORED
from shared.privacy import pseudonym
from tests.unit.alerts.world import START, fb


async def test_a_customers_negative_feedback_joins_their_open_alert_wherever_it_happened(world):
    customer = {"id": "c-1", "email": "li.wei@example.cn"}
    first = fb(mot=-1, location="store-1", customer=customer)
    await world.consume(first)
    alert_id = world.alert_of(first).alert_id
    assert world.alert_of(first).sla_due_at == START + timedelta(hours=4)  # -1: ALERTS_SLA_MINUS1_SECONDS

    world.clock.advance(minutes=5)
    worse = fb(mot=-3, location="store-2", customer=customer)
    await world.consume(worse)
    world.clock.advance(minutes=1)
    milder = fb(mot=-1, location="store-3", customer=customer)
    await world.consume(milder)

    alert = world.repo.alerts[alert_id]
    assert list(world.repo.alerts) == [alert_id]
    assert (alert.feedback_count, alert.severity) == (3, -3)
    # the worse severity tightened the timer: the ops team answers a -3 within 10 minutes
    assert alert.sla_due_at == START + timedelta(minutes=5) + timedelta(minutes=10)
    assert [(link.feedback_id, link.role) for link in world.repo.links.values()] == [
        (first.id, "raised"), (worse.id, "grouped"), (milder.id, "grouped")]
    assert world.history(alert_id) == ["raised", "grouped", "grouped"]
    # an update mail for the worse feedback at once; the milder one came within the quiet interval
    assert world.notifications(alert_id) == [("raised", 1, 0, "pending"), ("update", 1, 0, "pending")]
    assert world.metric("keymoment_alerts_feedback_grouped_total", reason="customer") == 2
    updates = world.outbox(ALERT_UPDATED.type)
    assert [e.id for e in updates] == [derived_id("updated", alert_id, f.id) for f in (worse, milder)]


async def test_a_place_groups_inside_the_window_counted_from_the_last_feedback(world):
    gate = dict(location="airport-X", touchpoint="gate 9")
    first = fb(mot=-2, **gate)
    await world.consume(first)
    world.clock.advance(minutes=29)
    second, elsewhere = fb(mot=-2, **gate), fb(mot=-2, location="airport-X", touchpoint="gate 10")
    await world.consume(second, elsewhere)
    world.clock.advance(minutes=29)  # 58 minutes after the first, 29 after the last
    third = fb(mot=-1, **gate)
    await world.consume(third)

    alert = world.alert_of(first)
    assert world.alert_of(second) is alert and world.alert_of(third) is alert
    assert world.alert_of(elsewhere) is not alert  # another touchpoint is another place
    assert (alert.feedback_count, alert.last_feedback_at) == (3, START + timedelta(minutes=58))
    assert world.metric("keymoment_alerts_feedback_grouped_total", reason="place") == 2
    assert world.repo.group_locks[1] == ["place:airport-X/gate 10", "place:airport-X/gate 9"]


async def test_a_place_outside_the_window_raises_a_new_alert(world):
    first = fb(mot=-2, location="airport-X", touchpoint="gate 9")
    await world.consume(first)
    world.clock.advance(minutes=30, seconds=1)
    later = fb(mot=-2, location="airport-X", touchpoint="gate 9")
    await world.consume(later)

    assert world.alert_of(later) is not world.alert_of(first)
    assert world.alert_of(first).feedback_count == 1
    assert world.metric("keymoment_alerts_raised_total", severity="-2") == 2


async def test_window_zero_turns_grouping_by_place_off_but_not_by_customer(make_world):
    world = make_world(alerts_group_window_seconds=0)
    customer = {"id": "c-2"}
    a, b = fb(mot=-2, location="store-1"), fb(mot=-2, location="store-1")
    c, d = fb(mot=-2, location="store-2", customer=customer), fb(mot=-1, location="store-3", customer=customer)
    await world.consume(a, b, c, d)
    assert world.alert_of(a) is not world.alert_of(b)
    assert world.alert_of(c) is world.alert_of(d)


async def test_one_batch_is_written_once_published_meanwhile_and_acknowledged_before_it_returns(world):
    world.publisher.ack_delay = 0.05  # Kafka answers a while after the publish
    customer = {"id": "c-3", "email": "wang.wu@example.cn"}
    batch = [
        fb(mot=2, location="store-7", customer=customer),
        fb(mot=-2, location="store-7", customer=customer),
        fb(mot=-3, text="Rude staff, I am cancelling my card.", location="store-8", customer=customer),
        fb(mot=-1, location="airport-X", touchpoint="gate 9"),
        fb(mot=-1, location="airport-X", touchpoint="gate 9"),
    ]
    twice = fb(feedback_id=batch[4].id, mot=-1, location="airport-X", touchpoint="gate 9")
    await world.consume(*batch, twice)

    writes = [j for j in world.journal if j.startswith("write")]
    assert writes == ["write customer_moments", "write alerts", "write alert_feedback", "write alert_events",
                      "write notifications", "write mail_queue", "write outbox"]  # one statement per table, in FK order
    assert world.journal[0] == "publish"  # started before the first write, not after the flush
    assert "acknowledged" in world.journal  # awaited before returning (before the caller commits)
    for phase in ("score", "follow_up", "flush", "publish_wait"):  # where the batch's time went, for ops
        assert world.metric("keymoment_alerts_feedback_batch_phase_seconds_count", phase=phase) == 1, phase
    after_publish = sum(world.metric("keymoment_alerts_feedback_batch_phase_seconds_sum", phase=p)
                        for p in ("follow_up", "flush", "publish_wait"))
    assert after_publish >= 0.049  # Kafka's answer (ack_delay) came in these phases, none of it lost
    # the customer's group key is their pseudonym (issue 14), never the id itself
    customer_key = pseudonym(world.ctx.settings.privacy_key(), "id", "c-3")
    assert world.repo.group_locks == [sorted([customer_key, "place:airport-X/gate 9", "place:store-7/None",
                                              "place:store-8/None"])]
    assert len(world.repo.alerts) == 2 and len(world.repo.links) == 4  # the copy of a feedback is ignored
    scored = world.publisher.published
    assert [e.id for _, e in scored] == [derived_id("scored", f.id) for f in (*batch, twice)]
    assert {e.source for _, e in scored} == {"/keymoment/alerts"} and {e.type for _, e in scored} == {FEEDBACK_SCORED.type}
    assert len(world.outbox(ALERT_RAISED.type)) == 2
    # the customer's other moments of this same batch (held, not yet written) are in their history in the mail
    raised = next(n for n in world.repo.notifications.values() if n.kind == "raised" and "store-7" in n.subject)
    [mail] = world.repo.mails_of(raised.notification_id)
    assert "(2 次 / contacts)" in mail.text and "Worst: MOT -3" in mail.text


async def test_a_batch_kafka_does_not_acknowledge_fails_and_leaves_nothing(world):
    world.publisher.fail_with = PublishUnavailable("no leader")
    with pytest.raises(PublishUnavailable):
        await world.consume(fb(mot=-3, location="store-1", customer={"id": "c-4"}))
    assert not world.repo.alerts and not world.repo.moments and not world.repo.outbox


async def test_positive_feedback_is_scored_and_remembered_but_raises_nothing(world):
    happy = fb(mot=3, location="store-1", customer={"email": "Zhang.San@example.cn"})
    await world.consume(happy)
    assert not world.repo.alerts and not world.repo.notifications
    [moment] = world.repo.moments.values()
    assert (moment.feedback_id, moment.mot, moment.at) == (happy.id, 3, START)
    assert world.metric("keymoment_alerts_feedback_scored_total", mot="+3") == 1


async def test_feedback_already_on_an_alert_under_a_new_event_id_is_not_linked_twice(world):
    tap = fb(mot=-2, location="store-1")
    await world.consume(tap)
    world.clock.advance(minutes=1)
    await world.consume(fb(feedback_id=tap.id, mot=-2, location="store-1"))
    assert world.alert_of(tap).feedback_count == 1 and len(world.repo.links) == 1
    assert len(world.publisher.published) == 2  # still scored and published: its consumers drop the copy


async def test_feedback_that_cannot_be_scored_is_permanent(world, monkeypatch):
    def refuse(*_, **__):
        raise ValueError("unsupported lang 'xx'")

    monkeypatch.setattr(world.ctx.scorer, "score", refuse)
    with pytest.raises(PermanentError, match="cannot be scored"):
        await world.consume(fb(text="?"))
