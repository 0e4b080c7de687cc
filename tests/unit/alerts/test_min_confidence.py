"""Routing rules set the confidence a text-only alert needs (issue 11 item 2): ``min_confidence``
per route, the file's default, the scorer's threshold when neither names one; ratings and
escalation cues alert whatever a route asks; a route asking less than the scorer alerts on a
text the scorer calls 0 or above, as MOT -1.

The texts are chosen by what the real scorer says of them now (``scored_texts``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from services.alerts.routing import Router, RoutesError, parse_routes
from services.alerts.scoring import Scorer
from shared.events import FEEDBACK_SCORED
from tests.unit.alerts.scored_texts import mild, routes, uncertain_negative
from tests.unit.alerts.world import World, fb, make_settings

BASE_SLA = {-3: 900, -2: 3600, -1: 14_400}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def world_with(tmp_path: Path, scorer: Scorer) -> Callable[[str], World]:
    """A world whose routes file is the given text."""
    return lambda text: World(make_settings(write(tmp_path, text)), scorer)


def test_a_route_takes_its_own_else_the_files_else_the_scorers_threshold(tmp_path):
    both = Router.load(write(tmp_path, routes(strict=0.9, eager=0.3, default=0.7)), base_sla=BASE_SLA,
                       alert_threshold=0.5)
    assert both.route(location="strict-1", touchpoint=None, channel="web", severity=-1).min_confidence == 0.9
    assert both.route(location="eager-1", touchpoint=None, channel="web", severity=-1).min_confidence == 0.3
    assert both.route(location="other", touchpoint=None, channel="web", severity=-1).min_confidence == 0.7
    assert both.lowest_min_confidence == 0.3
    plain = Router.load(write(tmp_path, "teams: {t: {delivery_manager: x@example.com}}\n"
                                        "routes: [{team: t, match: {channel: web}, min_confidence: 0.8}]\n"
                                        "default_route: {team: t}\n"), base_sla=BASE_SLA, alert_threshold=0.55)
    assert plain.route(location=None, touchpoint=None, channel="web", severity=-1).min_confidence == 0.8
    assert plain.route(location=None, touchpoint=None, channel="sms", severity=-1).min_confidence == 0.55
    assert plain.lowest_min_confidence == 0.55


@pytest.mark.parametrize(("text", "expected"), [
    (routes(strict=0, eager=0.3), "routes[0].min_confidence: Input should be greater than 0"),
    (routes(strict=0.9, eager=1.5), "routes[1].min_confidence: Input should be less than or equal to 1"),
    (routes(strict=0.9, eager=0.3, default="high"), "min_confidence: 'high' is not a probability"),
    (routes(strict="yes", eager=0.3), "routes[0].min_confidence: True is not a probability"),
    ("teams: {t: {delivery_manager: x@example.com}}\ndefault_route: {team: t, min_confidence: -0.1}\n",
     "default_route.min_confidence: Input should be greater than 0"),
])
def test_a_bad_min_confidence_stops_the_start_naming_the_entry(tmp_path, text, expected):
    with pytest.raises(RoutesError) as info:
        parse_routes(write(tmp_path, text))
    assert expected in str(info.value)


async def test_a_route_asking_more_confidence_holds_a_text_only_negative_that_other_routes_alert(world_with, scorer):
    text, result = uncertain_negative(scorer)
    world = world_with(routes(strict=round((result.p_negative + 1) / 2, 4), eager=0.3))
    held = fb(text=text, location="strict-1", customer={"id": "c-1"})
    alerted = fb(text=text, location="somewhere")
    await world.consume(held, alerted)

    assert held.id not in world.repo.links and world.alert_of(alerted).team == "ops"
    assert len(world.repo.alerts) == 1
    # still scored as the scorer says (reporting's KPIs) and in the customer's history
    scored = {e.data.feedback_id: e.data for _, e in world.publisher.published if e.type == FEEDBACK_SCORED.type}
    assert scored[held.id].negative and scored[held.id].mot == result.mot
    assert [m.feedback_id for m in world.repo.moments.values()] == [held.id]
    assert world.metric("keymoment_alerts_min_confidence_decisions_total", decision="held") == 1
    assert world.metric("keymoment_alerts_min_confidence_decisions_total", decision="lowered") == 0


async def test_ratings_and_escalation_cues_alert_whatever_the_route_asks(world_with, scorer):
    world = world_with(routes(strict=1.0, eager=1.0, default=1.0))
    rated = fb(mot=-2, text="Lovely stay, quick check-in", location="strict-1")
    threat = fb(text="I will report you to 12315 and call my lawyer", location="strict-2")
    await world.consume(rated, threat)
    assert (world.alert_of(rated).severity, world.alert_of(threat).severity) == (-2, -3)
    assert world.repo.links[threat.id].forced_by == "escalation" and world.repo.links[rated.id].forced_by == "rating"
    assert world.metric("keymoment_alerts_min_confidence_decisions_total", decision="held") == 0


async def test_a_route_asking_less_alerts_on_a_text_the_scorer_calls_not_negative_as_minus_one(world_with, scorer):
    text, result = mild(scorer)
    eager = round(result.p_negative - 0.05, 4)
    world = world_with(routes(strict=0.9, eager=eager))
    lowered, ignored = fb(text=text, location="eager-1"), fb(text=text, location="somewhere")
    await world.consume(lowered, ignored)

    alert = world.alert_of(lowered)
    assert (alert.severity, alert.route, alert.team) == (-1, "eager", "desk")
    assert ignored.id not in world.repo.links
    link = world.repo.links[lowered.id]
    assert (link.mot, link.confidence, link.p_negative, link.forced_by) == (
        -1, result.p_negative, result.p_negative, None)
    assert link.cues[0] == f"route eager: min_confidence {eager:.2f}" and link.cues[1:] == result.cues[:19]
    [mail] = world.repo.mails_of(next(iter(world.repo.notifications)))
    assert "MOT -1" in mail.subject and f"min_confidence {eager:.2f}" in mail.text
    scored = {e.data.feedback_id: e.data for _, e in world.publisher.published}
    assert (scored[lowered.id].negative, scored[lowered.id].mot) == (False, result.mot)  # the scorer's word
    assert world.metric("keymoment_alerts_min_confidence_decisions_total", decision="lowered") == 1


async def test_a_held_feedback_joins_no_open_alert(world_with, scorer):
    text, result = uncertain_negative(scorer)
    world = world_with(routes(strict=round((result.p_negative + 1) / 2, 4), eager=0.3))
    customer = {"id": "c-2"}
    first = fb(mot=-2, location="strict-1", touchpoint="desk", customer=customer)
    await world.consume(first)
    world.clock.advance(minutes=1)
    later = fb(text=text, location="strict-1", touchpoint="desk", customer=customer)
    await world.consume(later)
    assert later.id not in world.repo.links and world.alert_of(first).feedback_count == 1
    assert world.history(world.alert_of(first).alert_id) == ["raised"]
