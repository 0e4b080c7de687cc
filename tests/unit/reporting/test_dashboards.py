"""Dashboards as code: committed JSON equals the generator, stable uids,
datasource by uid, the variables the issue asks for."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from services.reporting import dashboards

ROOT = Path(__file__).resolve().parents[3]
GRAFANA = ROOT / "deploy" / "grafana"


@pytest.mark.parametrize("name", sorted(dashboards.DASHBOARDS))
def test_committed_dashboard_is_generated(name):
    committed = (GRAFANA / "dashboards" / name).read_text(encoding="utf-8")
    assert committed == dashboards.render(dashboards.DASHBOARDS[name]), (
        f"{name} is stale: python -m services.reporting.dashboards deploy/grafana/dashboards"
    )


def test_dashboards_have_stable_uids_variables_and_datasource_by_uid():
    datasource = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    seen = set()
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        board = json.loads(path.read_text(encoding="utf-8"))
        assert board["uid"] not in seen and board["uid"].startswith("keymoment-")
        seen.add(board["uid"])
        assert {v["name"] for v in board["templating"]["list"]} == {"channel", "location"}
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for panel in board["panels"]:
            assert panel["datasource"] == {"type": "prometheus", "uid": uid}, panel["title"]
            assert panel["targets"], panel["title"]
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == uid
            # no overlapping panels
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24
    assert seen == {"keymoment-cx-overview", "keymoment-operations"}


def test_overview_covers_the_issue():
    titles = " | ".join(p["title"] for p in dashboards.overview()["panels"]).lower()
    for needle in ("feedback by channel", "nps", "csat", "mot distribution", "negative-mot rate by location",
                   "open alerts", "time to acknowledge p50", "time to acknowledge p90", "sla breaches"):
        assert needle in titles


def test_provider_points_where_compose_mounts_the_dashboards():
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "keymoment.yml").read_text())
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = {v.split(":")[1]: v.split(":")[0] for v in compose["services"]["grafana"]["volumes"] if ":" in v}
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path] == "./deploy/grafana/dashboards"
