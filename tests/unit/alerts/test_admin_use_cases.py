"""Silences and manager tokens (``admin``): a matching silence stores the notification as
suppressed, expiring one ends it now; tokens are issued signed and revoked once."""

from __future__ import annotations

from datetime import timedelta

from services.alerts import admin
from services.alerts.links import MANAGER_TOKEN
from tests.unit.alerts.world import ADMIN, START, fb


async def _silence(world, **kwargs):
    values = dict(matchers={"location": "store-*", "severity": [-1, -2]}, starts_at=None,
                  ends_at=START + timedelta(days=1), actor=ADMIN, comment="支付系统故障 / known POS outage")
    return await world.run(admin.create_silence, **{**values, **kwargs})


async def test_a_matching_silence_stores_the_notification_as_suppressed(world):
    silence = await _silence(world)
    assert (silence.created_by, silence.starts_at, silence.active(world.clock.now())) == ("admin", START, True)
    muted = fb(mot=-2, location="store-9", touchpoint="checkout")
    critical = fb(mot=-3, location="store-9", touchpoint="entrance")  # -3 is not matched
    await world.consume(muted, critical)

    alert = world.alert_of(muted)
    assert (alert.silence_id, alert.last_notified_at) == (silence.silence_id, None)
    [note] = [n for n in world.repo.notifications.values() if n.alert_id == alert.alert_id]
    assert (world.notifications(alert.alert_id)[0][3], note.silence_id) == ("suppressed", silence.silence_id)
    assert world.repo.mails_of(note.notification_id) == []  # stored, never queued
    assert world.repo.events[0].note == f"route default; silenced by {silence.silence_id}"
    assert world.notifications(world.alert_of(critical).alert_id) == [("raised", 1, 0, "pending")]
    assert world.metric("keymoment_alerts_notifications_silenced_total") == 1

    # more feedback on the muted alert: its update is muted too
    world.clock.advance(minutes=20)
    await world.consume(fb(mot=-1, location="store-9", touchpoint="checkout"))
    assert world.notifications(alert.alert_id) == [("raised", 1, 0, "suppressed"), ("update", 1, 0, "suppressed")]


async def test_an_expired_silence_mutes_nothing_more(world):
    silence = await _silence(world)
    world.clock.advance(minutes=1)
    expired = await world.run(admin.expire_silence, silence.silence_id, actor=ADMIN)
    assert (expired.ends_at, expired.expired_by) == (world.clock.now(), "admin")
    assert world.repo.silences[silence.silence_id].ends_at == world.clock.now()
    world.clock.advance(minutes=1)
    again = await world.run(admin.expire_silence, silence.silence_id, actor=ADMIN)
    assert again.ends_at == START + timedelta(minutes=1)  # an earlier end stays
    assert await world.run(admin.expire_silence, "no-such-silence", actor=ADMIN) is None

    after = fb(mot=-2, location="store-10")
    await world.consume(after)
    assert world.notifications(world.alert_of(after).alert_id) == [("raised", 1, 0, "pending")]


async def test_a_silence_starting_later_mutes_from_then_on(world):
    await _silence(world, starts_at=START + timedelta(hours=1))
    before = fb(mot=-1, location="store-1")
    await world.consume(before)
    world.clock.advance(hours=1)
    later = fb(mot=-1, location="store-2")
    await world.consume(later)
    assert world.notifications(world.alert_of(before).alert_id)[0][3] == "pending"
    assert world.notifications(world.alert_of(later).alert_id)[0][3] == "suppressed"


async def test_a_manager_token_is_signed_recorded_and_revoked_once(world):
    token, record = await world.run(admin.issue_manager_token, email="CC.Supervisor@example.com", actor=ADMIN)
    assert record.email == "cc.supervisor@example.com"
    assert record.expires_at == START + timedelta(days=world.ctx.settings.alerts_manager_token_ttl_days)
    # the routes file names this manager in no team: a token that may see nothing (issue 14: tokens carry teams)
    assert world.ctx.signer.verify(MANAGER_TOKEN, token, now=START) == {
        "t": record.token_id, "sub": "cc.supervisor@example.com", "scp": [], "exp": int(record.expires_at.timestamp())}
    assert world.repo.tokens[record.token_id].revoked_at is None

    world.clock.advance(minutes=5)
    assert await world.run(admin.revoke_manager_token, record.token_id, actor=ADMIN)
    world.clock.advance(minutes=5)
    assert await world.run(admin.revoke_manager_token, record.token_id, actor=ADMIN)
    assert world.repo.tokens[record.token_id].revoked_at == START + timedelta(minutes=5)
    assert world.repo.tokens[record.token_id].revoked_by == "admin"
    assert not await world.run(admin.revoke_manager_token, "no-such-token", actor=ADMIN)


async def test_the_open_gauge_counts_unresolved_alerts_by_severity(world):
    await world.consume(fb(mot=-3, location="a"), fb(mot=-1, location="b"), fb(mot=-1, location="c"))
    await admin.refresh_open_gauge(world.repo, world.ctx)
    assert [world.metric("keymoment_alerts_open", severity=s) for s in ("-3", "-2", "-1")] == [1, 0, 2]
