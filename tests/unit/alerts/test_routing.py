"""Routing rules: first match wins, default route, iron-triangle levels, and clear validation errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.alerts.app import create_app
from services.alerts.routing import Router, RoutesError, parse_routes
from services.alerts.settings import EXAMPLE_ROUTES_FILE, AlertsSettings

BASE_SLA = {-3: 900, -2: 3600, -1: 14_400}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "routes.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_example_file_routes_first_match_and_default():
    router = Router.load(EXAMPLE_ROUTES_FILE, base_sla=BASE_SLA, alert_threshold=0.5)
    assert router.route(location="PEK-T3", touchpoint=None, channel="email", severity=-3).team_name == "airport-ground"
    # an email about a store goes to the stores team: the stores route comes before the channel route
    assert router.route(location="store-5", touchpoint=None, channel="email", severity=-1).team_name == "retail-stores"
    assert router.route(location="门店-北京", touchpoint=None, channel="kiosk", severity=-1).team_name == "retail-stores"
    assert router.route(location="pek-t1", touchpoint=None, channel="web", severity=-1).team_name == "airport-ground"
    assert router.route(location=None, touchpoint=None, channel="phone", severity=-2).team_name == "contact-centre"
    fallback = router.route(location="Somewhere", touchpoint=None, channel="web", severity=-2)
    assert (fallback.route, fallback.team_name) == ("default", "customer-care")


def test_levels_resolve_roles_to_addresses_and_sla_overrides_apply():
    router = Router.load(EXAMPLE_ROUTES_FILE, base_sla=BASE_SLA, alert_threshold=0.5)
    team = router.team("contact-centre")
    assert team.recipients(1) == ["cc.supervisor@example.com"]
    assert team.recipients(3) == ["he.min@example.com", "head.of.service@example.com"]
    assert team.recipients(4) == []
    assert router.sla_seconds(-3, "airport-ground") == 600  # team override
    assert router.sla_seconds(-2, "airport-ground") == 3600  # file-level
    assert router.sla_seconds(-1, None) == 4 * 3600


def test_default_escalation_is_delivery_then_account_and_solution(tmp_path):
    rules = parse_routes(write(tmp_path, """
teams:
  t:
    account_manager: a@example.com
    solution_manager: s@example.com
    delivery_manager: [d1@example.com, D2@Example.com]
default_route: {team: t}
"""))
    team = rules.teams["t"]
    assert team.recipients(1) == ["d1@example.com", "d2@example.com"]
    assert team.recipients(2) == ["a@example.com", "s@example.com"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("teams: {t: {delivery_manager: x@example.com}}\nroutes: [{team: nope}]\ndefault_route: {team: t}\n",
         "routes[0] (unnamed): unknown team 'nope'; known teams: t"),
        ("teams: {t: {delivery_manager: not-an-address}}\ndefault_route: {team: t}\n",
         "teams.t.delivery_manager: 'not-an-address' is not an email address"),
        ("sla: {-3: soon}\nteams: {t: {delivery_manager: x@example.com}}\ndefault_route: {team: t}\n",
         "sla.-3: 'soon' is not a duration"),
        ("teams: {t: {delivery_manager: x@example.com}}\n",
         "default_route: Field required"),
        ("teams: {t: {delivery_manager: x@example.com, escalation: [{roles: [account_manager]}]}}\ndefault_route: {team: t}\n",
         "escalation level 1 names only roles with nobody in them: account_manager"),
        ("teams: {t: {delivery_manager: x@example.com}}\nroutes: [{team: t, match: {severity: -4}}]\ndefault_route: {team: t}\n",
         "routes[0].match.severity[0]"),
        ("teams: {t: {delivery_manager: x@example.com, pager: 123}}\ndefault_route: {team: t}\n",
         "teams.t.pager: Extra inputs are not permitted"),
        ("teams: [unclosed\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
)
def test_invalid_files_fail_with_a_message_naming_the_entry(tmp_path, text, expected):
    with pytest.raises(RoutesError) as info:
        parse_routes(write(tmp_path, text))
    assert expected in str(info.value)


def test_missing_file_and_start_up_refuse_a_bad_file(tmp_path):
    with pytest.raises(RoutesError, match="cannot read"):
        parse_routes(tmp_path / "absent.yaml")
    bad = write(tmp_path, "teams: {}\ndefault_route: {team: t}\n")
    with pytest.raises(RoutesError, match="teams"):
        create_app(AlertsSettings(keymoment_env="test", alerts_routes_file=bad))


def test_production_requires_a_routes_file_and_a_signing_key():
    token = "4f0c2a9e7b1d8c3f6a5e0b9d2c7f1a8e"  # production refuses short or low-variety secrets
    with pytest.raises(ValueError, match="LINK_SIGNING_KEY"):
        AlertsSettings(keymoment_env="production", database_url="postgresql://u:p@db/k", admin_token=token)
    s = AlertsSettings(keymoment_env="production", database_url="postgresql://u:p@db/k", admin_token=token,
                       link_signing_key=token[::-1], privacy_hash_key=token.upper())
    with pytest.raises(ValueError, match="ALERTS_ROUTES_FILE"):
        s.routes_path()
