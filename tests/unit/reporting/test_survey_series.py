"""The survey funnel and recovery series as exposed: every step, reason, severity and score of a
seen survey (team and location) at 0 until counted; the dashboard and rules that read them."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from services.reporting import dashboards, domain, rules
from services.reporting.exposition import build_text


def row(metric: str, value: float, **labels: str) -> dict:
    base = {"metric": metric, "channel": "", "location": "", "touchpoint": "", "severity": "", "key": "",
            "survey": "", "team": "", "value": value}
    return base | labels


def samples(text: bytes) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text.decode()) for s in f.samples}


def test_funnel_and_recovery_series_are_complete_per_survey_team_and_location():
    rows = [
        row(domain.SURVEY_FUNNEL, 3, survey="post-visit", key="delivered"),
        row(domain.SURVEY_SKIPPED, 2, survey="post-visit", key="frequency"),
        row(domain.RECOVERY, 1, team="retail-east", location="store-1", severity="-2", key="2"),
    ]
    m = samples(build_text(rows, []))
    funnel = {dict(ls)["step"]: v for (n, ls), v in m.items() if n == "cx_survey_invitations_total"}
    assert funnel == {"invited": 0, "delivered": 3, "opened": 0, "started": 0, "completed": 0, "unsubscribed": 0}
    skipped = {dict(ls)["reason"]: v for (n, ls), v in m.items() if n == "cx_survey_skipped_total"}
    assert skipped == dict.fromkeys(domain.SKIP_REASONS, 0.0) | {"frequency": 2.0}
    recovery = {(dict(ls)["severity"], dict(ls)["score"]): v for (n, ls), v in m.items()
                if n == "cx_recovery_answers_total"}
    assert len(recovery) == 21 and recovery[("-2", "2")] == 1 and sum(recovery.values()) == 1
    empty = samples(build_text([], []))  # no survey, team or location seen: no series yet
    assert not [n for n, _ in empty if n.startswith(("cx_survey", "cx_recovery"))]


def test_increments_fold_into_the_series_they_name():
    assert domain.funnel_increment(survey="s", step="skipped", reason="quiet_hours").series == (
        domain.SURVEY_SKIPPED, "", "", "", "", "quiet_hours", "s", "")
    assert domain.funnel_increment(survey="s", step="opened", reason=None).key == "opened"
    inc = domain.recovery_increment(team="t", location="l", raised_mot=-3, answer_mot=1)
    assert (inc.metric, inc.team, inc.location, inc.severity, inc.key) == (domain.RECOVERY, "t", "l", "-3", "1")
    merged = domain.merge([inc, inc, domain.funnel_increment(survey="s", step="opened", reason=None)])
    assert [(m.metric, m.delta) for m in merged] == [(domain.RECOVERY, 2.0), (domain.SURVEY_FUNNEL, 1.0)]


def test_the_overview_shows_the_funnel_response_rate_and_recovery():
    titles = [p["title"] for p in dashboards.overview()["panels"]]
    for title in ("Survey funnel", "Survey response rate", "Invitations skipped by reason",
                  "Recovery: share recovered to MOT ≥ +1, by team", "Recovery: mean MOT change, by location"):
        assert title in titles
    recorded = {r["record"] for g in rules.rule_groups()["groups"] for r in g.get("rules", []) if "record" in r}
    for by in ("cx:", "team:cx_", "location:cx_"):
        for name in ("recovery_recovered_ratio", "recovery_mot_change_mean"):
            assert f"{by}{name}:7d" in recorded
    assert "survey:cx_survey_response_rate:1d" in recorded
