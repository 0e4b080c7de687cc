"""deploy/prometheus/prometheus.yml: it scrapes each service's /metrics at the
compose name and the port the service listens on, and loads the rules from
where docker-compose mounts them."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess

import pytest
import yaml

from tests.deploy.support import ROOT, SERVICES, default_port

CONFIG_PATH = ROOT / "deploy" / "prometheus" / "prometheus.yml"
CONFIG = yaml.safe_load(CONFIG_PATH.read_text(encoding="utf-8"))
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def scrape_jobs() -> dict[str, dict]:
    return {job["job_name"]: job for job in CONFIG["scrape_configs"]}


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_is_scraped_at_its_compose_name_and_port(name):
    job = scrape_jobs()[name]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [t for static in job["static_configs"] for t in static["targets"]]
    assert targets == [f"{name}:{default_port(name)}"]
    host, port = targets[0].split(":")
    assert host in COMPOSE["services"]
    published = {int(str(p).rsplit(":", 1)[-1]) for p in COMPOSE["services"][host]["ports"]}
    assert int(port) in published


def test_every_scraped_host_exists_in_compose():
    for job in CONFIG["scrape_configs"]:
        for static in job["static_configs"]:
            for target in static["targets"]:
                host = target.split(":")[0]
                assert host == "localhost" or host in COMPOSE["services"], f"{job['job_name']}: unknown host {host}"


def test_no_target_label_clashes_with_the_services_own_service_label():
    for job in CONFIG["scrape_configs"]:
        for static in job["static_configs"]:
            assert "service" not in static.get("labels", {}), "it would rename the metrics' own label to exported_service"


def test_rule_files_are_where_compose_mounts_the_rules():
    mounts = [str(v).split(":")[1] for v in COMPOSE["services"]["prometheus"]["volumes"]]
    assert CONFIG["rule_files"], "no rule files loaded"
    for pattern in CONFIG["rule_files"]:
        assert any(fnmatch.fnmatch(f"{m}/x.yml", pattern) for m in mounts), f"{pattern} is not under a mounted directory"


@pytest.mark.prometheus
@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (make system-deps)")
def test_promtool_accepts_the_config():
    result = subprocess.run(
        ["promtool", "check", "config", "--syntax-only", str(CONFIG_PATH)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
