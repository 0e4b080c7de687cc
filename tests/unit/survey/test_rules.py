"""The contact rules as a pure decision: order of reasons, frequency windows and scopes, recovery
bypass, quiet hours across midnight and time zones, a trigger's delay."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.survey import rules
from services.survey.schemas import ContactRules
from services.survey.settings import SurveySettings
from shared.contracts import SkipReason

NOW = datetime(2026, 12, 1, 4, 0, tzinfo=UTC)  # 12:00 in Shanghai
SETTINGS = SurveySettings(keymoment_env="test")
DEFAULT = rules.effective(None, SETTINGS)


def decide(r: rules.Rules = DEFAULT, **kwargs) -> rules.Decision:
    values = {"now": NOW, "survey_id": "s", "has_address": True, "suppression": None, "recovery": False,
              "contacts": []} | kwargs
    return rules.decide(r, **values)


def ago(**delta: float) -> datetime:
    return NOW - timedelta(**delta)


def test_the_defaults_are_one_invitation_per_30_days_across_every_survey():
    assert (DEFAULT.max_invitations, DEFAULT.window, DEFAULT.scope, DEFAULT.min_interval) == (
        1, timedelta(days=30), "all", timedelta(days=1))
    assert DEFAULT.quiet == (datetime.strptime("21:00", "%H:%M").time(), datetime.strptime("08:00", "%H:%M").time())
    assert decide() == rules.Decision("queued")
    assert decide(contacts=[rules.Contact("other", ago(hours=3))]).reason is SkipReason.FREQUENCY  # the same day
    assert decide(contacts=[rules.Contact("other", ago(days=29))]).reason is SkipReason.FREQUENCY
    assert decide(contacts=[rules.Contact("other", ago(days=31))]).status == "queued"


def test_an_unsubscribe_outranks_every_other_reason():
    crowded = [rules.Contact("s", ago(minutes=1))] * 5
    assert decide(suppression="unsubscribed", contacts=crowded).reason is SkipReason.UNSUBSCRIBED
    assert decide(suppression="unsubscribed", recovery=True).reason is SkipReason.UNSUBSCRIBED
    for reason in ("bounced", "complained", "erased", "manual"):
        assert decide(suppression=reason, contacts=crowded).reason is SkipReason.SUPPRESSED
    assert decide(has_address=False).reason is SkipReason.NO_ADDRESS


def test_recovery_surveys_bypass_the_frequency_rules_only():
    crowded = [rules.Contact("s", ago(minutes=1))] * 5
    assert decide(recovery=True, contacts=crowded).status == "queued"
    assert decide(recovery=True, suppression="bounced").reason is SkipReason.SUPPRESSED
    night = NOW.replace(hour=15)  # 23:00 in Shanghai
    assert decide(recovery=True, now=night).send_at == datetime(2026, 12, 2, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))


def test_a_surveys_own_rules_window_scope_and_gap():
    own = rules.effective(ContactRules(max_invitations=3, window_days=7, scope="survey", min_days_between=2),
                          SETTINGS)
    mine = [rules.Contact("s", ago(days=3)), rules.Contact("s", ago(days=4))]
    assert decide(own, contacts=mine).status == "queued"
    assert decide(own, contacts=[*mine, rules.Contact("s", ago(days=5))]).reason is SkipReason.FREQUENCY
    assert decide(own, contacts=[*mine, rules.Contact("other", ago(days=5))]).status == "queued"  # not counted
    assert decide(own, contacts=[rules.Contact("other", ago(days=1))]).reason is SkipReason.MIN_INTERVAL  # any survey
    no_gap = rules.effective(ContactRules(max_invitations=2, min_days_between=0), SETTINGS)
    assert decide(no_gap, contacts=[rules.Contact("s", ago(minutes=1))]).status == "queued"


@pytest.mark.parametrize(("utc", "zone", "until"), [
    ("2026-12-01T13:30", "Asia/Shanghai", "2026-12-02T08:00+08:00"),  # 21:30: until tomorrow 08:00
    ("2026-12-01T23:30", "Asia/Shanghai", "2026-12-02T08:00+08:00"),  # 07:30: until 08:00 the same day
    ("2026-12-01T00:00", "Asia/Shanghai", None),  # 08:00: over
    ("2026-12-01T12:59", "Asia/Shanghai", None),  # 20:59: not yet
    ("2026-12-01T13:30", "Europe/London", None),  # 13:30 in London
    ("2026-12-01T22:00", "Europe/London", "2026-12-02T08:00+00:00"),
    ("2026-03-29T00:30", "Europe/London", "2026-03-29T08:00+01:00"),  # the night the clocks go forward
])
def test_quiet_hours_in_the_customers_time_zone(utc, zone, until):
    at = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    end = rules.quiet_until(at, ZoneInfo(zone), DEFAULT.quiet)
    assert (end.isoformat(timespec="minutes") if end else None) == until


def test_quiet_hours_defer_or_skip_and_a_triggers_delay_is_checked_at_its_end():
    night = NOW.replace(hour=14)  # 22:00 in Shanghai
    assert decide(now=night).send_at == datetime(2026, 12, 2, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    skipping = rules.effective(ContactRules(quiet_hours={"start": "22:00", "end": "07:00", "mode": "skip"}), SETTINGS)
    assert decide(skipping, now=night).reason is SkipReason.QUIET_HOURS
    none = rules.effective(ContactRules(quiet_hours={"start": "00:00", "end": "00:00"}), SETTINGS)
    assert decide(none, now=night).send_at is None
    delayed = decide(not_before=NOW + timedelta(hours=2))  # 14:00 in Shanghai: sent then
    assert delayed.send_at == NOW + timedelta(hours=2)
    late = decide(not_before=NOW + timedelta(hours=10))  # 22:00: deferred to the morning after
    assert late.send_at == datetime(2026, 12, 2, 8, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
    assert decide(not_before=NOW - timedelta(hours=1)).send_at is None  # already due
    london = decide(now=night, time_zone=ZoneInfo("Europe/London"))  # 14:00 there
    assert london.send_at is None


def test_settings_and_definitions_refuse_unknown_time_zones():
    with pytest.raises(ValueError, match="unknown time zone"):
        SurveySettings(keymoment_env="test", survey_default_time_zone="Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        ContactRules(time_zone="Asia/Peking ")
    assert rules.parse_quiet_hours("") is None and rules.parse_quiet_hours("08:00-08:00") is None
