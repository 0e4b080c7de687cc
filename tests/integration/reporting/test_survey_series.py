"""Survey funnels and recovery effectiveness in reporting, from events on the real broker:
each funnel step counted once, a recovery answer counted once whatever order its three
events (answer, score, alert) arrive in."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.contracts import AlertRaised, FeedbackReceived, SurveyInvitationStep
from shared.events import ALERT_RAISED, FEEDBACK_RECEIVED, SURVEY_INVITATION, Envelope, event_source
from tests.integration.reporting.support import T0, new_id, publish, publisher, scored, scrape, total, value
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration


def settings(service_env: dict) -> ReportingSettings:
    env = {**service_env, "kafka_consumer_group": f"reporting-{uuid.uuid4().hex[:8]}"}
    return ReportingSettings(**env, reporting_refresh_seconds=0.1)


def step(invitation_id: str, name: str, *, survey: str = "post-visit", reason: str | None = None,
         event_id: str | None = None) -> Envelope:
    data = SurveyInvitationStep(invitation_id=invitation_id, survey_id=survey, step=name, reason=reason, at=T0)
    return Envelope.new(SURVEY_INVITATION, data, source=event_source("survey"), key=f"invitation:{invitation_id}",
                        id=event_id)


def answer(fid: str, alert_id: str, *, location: str = "store-1", sender: str = "survey") -> Envelope:
    data = FeedbackReceived(id=fid, channel="survey", location=location, touchpoint="checkout", text="回访",
                            rating={"scale": "mot", "value": 1}, received_at=T0, source="survey",
                            survey={"survey_id": "recovery", "recovery_for_alert_id": alert_id})
    return Envelope.new(FEEDBACK_RECEIVED, data, source=event_source(sender), key=fid)


def raised(alert_id: str, *, severity: int, team: str | None, location: str = "store-1") -> Envelope:
    data = AlertRaised(alert_id=alert_id, feedback_id=f"fb-{alert_id}", severity=severity, channel="kiosk",
                       location=location, touchpoint="checkout", team=team, raised_at=T0,
                       sla_due_at=T0 + timedelta(hours=1))
    return Envelope.new(ALERT_RAISED, data, source=event_source("alerts"), key=f"alert:{alert_id}")


async def test_funnel_steps_and_recovery_answers_become_cx_series(service_env, kafka_bootstrap):
    s = settings(service_env)
    inv = [new_id("inv") for _ in range(4)]
    funnel = [step(inv[0], "invited"), step(inv[0], "delivered"), step(inv[0], "opened"), step(inv[0], "started"),
              step(inv[0], "completed"), step(inv[1], "invited"), step(inv[1], "delivered"),
              step(inv[2], "skipped", reason="frequency"), step(inv[3], "skipped", reason="unsubscribed",
                                                                  survey="recovery")]
    again = [step(inv[0], "delivered"), step(inv[0], "delivered")]  # redelivered under new event ids
    a1, a2, a3 = (new_id("alert") for _ in range(3))
    f1, f2, f3, f4, f5 = (new_id() for _ in range(5))
    # a1 (raised at -2, retail-east): answered -1 then +2; a2 (-3, retail-east, store-2): answered +3, events
    # in the order score, answer, alert; a3's answer is never scored (not counted)
    recovery_first = [answer(f1, a1), scored(f1, -1), scored(f3, 3, location="store-2"),
                      answer(f3, a2, location="store-2"), answer(f4, a3),
                      answer(f5, a1, sender="intake"), scored(f5, 3)]  # not survey's: feedback, no recovery
    recovery_later = [raised(a1, severity=-2, team="retail-east"), answer(f2, a1), scored(f2, 2),
                      raised(a2, severity=-3, team="retail-east", location="store-2"),
                      raised(a3, severity=-1, team=None)]
    async with running(create_app(s)) as app, publisher(kafka_bootstrap) as pub:
        await publish(pub, s, funnel + recovery_first)
        await publish(pub, s, again + recovery_later + [answer(f2, a1), scored(f2, 2)])

        async def counted() -> bool:
            m = await scrape(app.url)
            return (total(m, "cx_survey_invitations_total") == 7 and total(m, "cx_survey_skipped_total") == 2
                    and total(m, "cx_recovery_answers_total") == 3)

        await wait_until(counted, timeout=30, what="funnel steps and recovery answers counted")
        m = await scrape(app.url)

    steps = {name: value(m, "cx_survey_invitations_total", survey="post-visit", step=name)
             for name in ("invited", "delivered", "opened", "started", "completed", "unsubscribed")}
    assert steps == {"invited": 2, "delivered": 2, "opened": 1, "started": 1, "completed": 1, "unsubscribed": 0}
    assert value(m, "cx_survey_skipped_total", survey="post-visit", reason="frequency") == 1
    assert value(m, "cx_survey_skipped_total", survey="recovery", reason="unsubscribed") == 1
    assert ("cx_survey_skipped_total", frozenset({"survey": "post-visit", "reason": "quiet_hours"}.items())) in m
    east = {"team": "retail-east", "location": "store-1"}
    assert value(m, "cx_recovery_answers_total", **east, severity="-2", score="-1") == 1
    assert value(m, "cx_recovery_answers_total", **east, severity="-2", score="2") == 1
    assert value(m, "cx_recovery_answers_total", team="retail-east", location="store-2", severity="-3",
                 score="3") == 1
    assert total(m, "cx_recovery_answers_total", team="unknown") == 0  # a3's answer has no score yet
    # every severity and score of a seen team and location is exposed (rates never lose a term)
    assert sum(1 for (n, ls) in m if n == "cx_recovery_answers_total" and ("location", "store-1") in ls) == 21
