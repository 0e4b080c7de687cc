"""Scoped permissions (issue 14 item 1): manager tokens carry their teams; a manager lists, acts
on and silences only alerts of those teams; silences are capped, scoped, expired only by their
creator or an admin, with an audit trail; a -3 escalation beyond level 1 is muted only by an
admin's silence that says so."""

from __future__ import annotations

import contextlib
from datetime import timedelta

import pytest

from services.alerts import admin, escalation, queries, recovery
from services.alerts.api import deps
from services.alerts.context import Actor
from services.alerts.domain import Forbidden, InvalidSilence
from services.alerts.links import MANAGER_TOKEN
from tests.unit.alerts.world import ADMIN, START, fb

OPS = Actor("dm@example.com", teams=frozenset({"ops"}))
DESK = Actor("desk@example.com", teams=frozenset({"desk"}))
LATER = START + timedelta(days=1)


async def _silence(world, actor: Actor, matchers: dict, **kwargs):
    values = dict(starts_at=None, ends_at=LATER, comment="known outage, ticket 4711")
    return await world.run(admin.create_silence, matchers=matchers, actor=actor, **{**values, **kwargs})


async def test_a_manager_lists_and_acts_on_alerts_of_their_teams_only(world):
    ops_alert, desk_alert = fb(mot=-2, location="plant-1"), fb(mot=-2, location="desk-1")
    await world.consume(ops_alert, desk_alert)
    ops_id, desk_id = world.alert_of(ops_alert).alert_id, world.alert_of(desk_alert).alert_id

    def listed(actor):
        return queries.list_alerts(world.repo, actor=actor, status=None, severity=None, location=None, team=None,
                                   since=None, before=None, limit=10)

    assert [a.alert_id for a in await listed(OPS)] == [ops_id]
    assert [a.alert_id for a in await listed(DESK)] == [desk_id]
    assert {a.alert_id for a in await listed(ADMIN)} == {ops_id, desk_id}
    assert await listed(Actor("nobody@example.com")) == []  # a token without teams sees nothing
    with pytest.raises(Forbidden):
        await queries.alert_detail(world.repo, desk_id, actor=OPS)
    with pytest.raises(Forbidden):
        await world.run(recovery.acknowledge, desk_id, actor=OPS)
    assert (await world.run(recovery.acknowledge, ops_id, actor=OPS)).acknowledged_by == OPS.name


@pytest.mark.parametrize("matchers", [
    {"channel": "*"},  # every team's alerts
    {"location": "plant-*", "severity": [-2]},  # no team: every team's
    {"team": "*"},
    {"team": "o*"},  # a glob that could take in other teams
    {"team": ["ops", "desk"]},  # a team that is not theirs
    {"team": "desk"},
])
async def test_a_managers_silence_of_more_than_their_teams_is_forbidden(world, matchers):
    with pytest.raises(Forbidden):
        await _silence(world, OPS, matchers)
    assert not world.repo.silences


async def test_a_manager_silences_their_team_and_an_admin_any(world):
    mine = await _silence(world, OPS, {"team": "ops", "location": "plant-*"})
    assert (mine.created_by, mine.include_escalations) == ("dm@example.com", False)
    everything = await _silence(world, ADMIN, {"channel": "*"})
    assert everything.created_by == "admin"
    muted = fb(mot=-1, location="desk-2")  # the admin's global silence mutes the desk team too
    await world.consume(muted)
    assert world.notifications(world.alert_of(muted).alert_id) == [("raised", 1, 0, "suppressed")]


async def test_only_an_admins_silence_may_mute_escalations(world):
    with pytest.raises(Forbidden, match="only an admin"):
        await _silence(world, OPS, {"team": "ops"}, include_escalations=True)
    assert (await _silence(world, ADMIN, {"team": "ops"}, include_escalations=True)).include_escalations


async def test_silences_are_capped_and_never_over_before_they_start(make_world):
    world = make_world(alerts_silence_max_days=7)
    with pytest.raises(InvalidSilence, match="ALERTS_SILENCE_MAX_DAYS"):
        await _silence(world, ADMIN, {"team": "ops"}, ends_at=START + timedelta(days=7, seconds=1))
    with pytest.raises(InvalidSilence, match="ALERTS_SILENCE_MAX_DAYS"):  # later, but still at most 7 days long
        await _silence(world, OPS, {"team": "ops"}, starts_at=START + timedelta(days=30),
                       ends_at=START + timedelta(days=38))
    with pytest.raises(InvalidSilence, match="past"):
        await _silence(world, ADMIN, {"team": "ops"}, ends_at=START - timedelta(minutes=1))
    # started a month ago: the cap counts from now
    started = await _silence(world, ADMIN, {"team": "ops"}, starts_at=START - timedelta(days=30),
                             ends_at=START + timedelta(days=7))
    assert started.ends_at - started.starts_at == timedelta(days=37)
    assert (await _silence(world, OPS, {"team": "ops"}, ends_at=START + timedelta(days=7))).ends_at == START + timedelta(days=7)


async def test_a_silence_is_expired_by_its_creator_or_an_admin_with_an_audit_trail(world):
    silence = await _silence(world, OPS, {"team": "ops"})
    other = Actor("am@example.com", teams=frozenset({"ops"}))  # the same team, not its creator
    world.clock.advance(minutes=5)
    with pytest.raises(Forbidden, match="only its creator"):
        await world.run(admin.expire_silence, silence.silence_id, actor=other)
    expired = await world.run(admin.expire_silence, silence.silence_id, actor=OPS)
    assert (expired.ends_at, expired.expired_by) == (world.clock.now(), OPS.name)

    second = await _silence(world, OPS, {"team": "ops", "severity": [-1]})
    world.clock.advance(minutes=5)
    assert (await world.run(admin.expire_silence, second.silence_id, actor=ADMIN)).expired_by == "admin"

    trail = await world.repo.silence_events(silence.silence_id)
    assert [(e.action, e.actor, e.at) for e in trail] == [
        ("created", OPS.name, START), ("expired", OPS.name, START + timedelta(minutes=5))]
    assert trail[0].detail == {"matchers": {"team": "ops"}, "starts_at": START.isoformat(),
                               "ends_at": LATER.isoformat(), "comment": "known outage, ticket 4711",
                               "include_escalations": False}
    assert [e.actor for e in await world.repo.silence_events(second.silence_id)] == [OPS.name, "admin"]


async def test_a_managers_silence_never_mutes_a_minus3_escalation_beyond_level_1(world):
    await _silence(world, OPS, {"team": "ops"})
    tap = fb(mot=-3, location="plant-1")  # team ops: -3 due in 10 minutes, three levels
    await world.consume(tap)
    alert_id = world.alert_of(tap).alert_id
    world.clock.advance(minutes=11)
    assert await world.run(escalation.escalate_due) == [alert_id]
    assert world.notifications(alert_id) == [("raised", 1, 0, "suppressed"), ("escalation", 2, 0, "pending")]
    [escalated] = [n for n in world.repo.notifications.values() if n.kind == "escalation"]
    assert [m.recipient for m in world.repo.mails_of(escalated.notification_id)] == ["am@example.com"]

    # an admin's silence that says so mutes the next level too
    await _silence(world, ADMIN, {"team": "ops"}, include_escalations=True)
    world.clock.advance(minutes=11)
    assert await world.run(escalation.escalate_due) == [alert_id]
    assert world.notifications(alert_id)[-1] == ("escalation", 3, 0, "suppressed")


async def test_a_silence_mutes_the_escalation_of_a_milder_alert(world):
    await _silence(world, OPS, {"team": "ops"})
    tap = fb(mot=-2, location="plant-1")
    await world.consume(tap)
    alert_id = world.alert_of(tap).alert_id
    world.clock.advance(hours=1, seconds=1)
    assert await world.run(escalation.escalate_due) == [alert_id]
    assert world.notifications(alert_id) == [("raised", 1, 0, "suppressed"), ("escalation", 2, 0, "suppressed")]


async def test_a_manager_sees_the_silences_that_may_mute_their_teams(world):
    mine = await _silence(world, OPS, {"team": "ops"})
    theirs = await _silence(world, DESK, {"team": "desk"})
    everyone = await _silence(world, ADMIN, {"location": "plant-*"})

    async def seen(actor):
        return {s.silence_id for s in await queries.list_silences(world.repo, actor=actor, now=START,
                                                                  include_expired=False)}

    assert await seen(OPS) == {mine.silence_id, everyone.silence_id}
    assert await seen(DESK) == {theirs.silence_id, everyone.silence_id}
    assert await seen(ADMIN) == {mine.silence_id, theirs.silence_id, everyone.silence_id}
    assert await queries.silence_detail(world.repo, theirs.silence_id, actor=OPS) is None


async def test_a_manager_token_carries_the_teams_the_routes_file_names_them_in_or_the_admins_choice(world):
    token, record = await world.run(admin.issue_manager_token, email="DM@example.com", actor=ADMIN)
    assert record.teams == ["ops"]
    claims = world.ctx.signer.verify(MANAGER_TOKEN, token, now=START)
    assert (claims["sub"], claims["scp"], claims["t"]) == ("dm@example.com", ["team:ops"], record.token_id)

    _, chosen = await world.run(admin.issue_manager_token, email="dm@example.com", actor=ADMIN, teams=["desk", "ops"])
    assert chosen.teams == ["desk", "ops"]
    with pytest.raises(admin.UnknownTeams, match="nope"):
        await world.run(admin.issue_manager_token, email="dm@example.com", actor=ADMIN, teams=["nope"])
    assert len(world.repo.tokens) == 2


async def test_the_bearer_auth_maps_a_manager_token_to_its_teams(world, monkeypatch):
    token, _ = await world.run(admin.issue_manager_token, email="desk@example.com", actor=ADMIN)

    class Revocations:  # the revocation check reads the database: here, the in-memory records
        async def token_usable(self, token_id, email):
            record = world.repo.tokens.get(token_id)
            return record is not None and record.email == email and record.revoked_at is None

    @contextlib.asynccontextmanager
    async def reading(_pool):
        yield Revocations()

    monkeypatch.setattr(deps, "reading", reading)
    principal = await world.ctx.auth.authenticate(f"Bearer {token}")
    assert deps.actor_of(principal) == Actor("desk@example.com", teams=frozenset({"desk"}))
    assert deps.actor_of(await world.ctx.auth.authenticate("Bearer dev-admin-token")).admin
