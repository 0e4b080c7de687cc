"""reporting's /metrics serves the customer KPIs only to who holds METRICS_TOKEN, and the
shipped Prometheus configuration (deploy/prometheus/prometheus.yml, its reporting job as
docker-compose runs it) scrapes it with that token: checked with the real prometheus binary."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from tests.integration.reporting.test_prometheus_real import Prometheus
from tests.support.services import running, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="prometheus not installed (apt-get install prometheus)"),
]

TOKEN = "0b9f1c2e8d7a6b5c4f3e2d1c0b9a8f7e6d5c4b3a"
ROOT = Path(__file__).resolve().parents[3]
SHIPPED = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))


def prometheus(tmp_path: Path, config: dict) -> Prometheus:
    """The real-Prometheus harness of the reporting tests, run with ``config`` instead of its own."""
    prom = Prometheus(tmp_path, "unused:1")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return prom


async def test_only_the_scrape_token_reads_the_kpis_and_the_shipped_config_sends_it(service_env, tmp_path):
    s = ReportingSettings(**service_env, metrics_token=TOKEN)
    async with running(create_app(s)) as app, httpx.AsyncClient(timeout=10) as http:
        anonymous = await http.get(f"{app.url}/metrics")
        scraper = await http.get(f"{app.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert anonymous.status_code == 401 and "cx_" not in anonymous.text
        assert scraper.status_code == 200 and "cx_nps_responses_total" in scraper.text

        (job,) = [j for j in SHIPPED["scrape_configs"] if j["job_name"] == "reporting"]
        assert job["authorization"]["credentials_file"] == "/run/secrets/metrics_token"  # docker-compose's secret
        (tmp_path / "metrics_token").write_text(TOKEN + "\n", encoding="utf-8")
        shipped = {**job, "authorization": {**job["authorization"], "credentials_file": str(tmp_path / "metrics_token")},
                   "static_configs": [{"targets": [f"127.0.0.1:{app.port}"]}]}
        without = {"job_name": "anonymous", "static_configs": [{"targets": [f"127.0.0.1:{app.port}"]}]}
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "900ms"}, "scrape_configs": [shipped, without]}
        with prometheus(tmp_path, config).run() as prom:
            async def scraped() -> bool:
                try:
                    response = await http.get(f"{prom.url}/api/v1/query", params={"query": "up"})
                except httpx.HTTPError:
                    return False
                return response.status_code == 200 and len(response.json().get("data", {}).get("result", [])) == 2
            await wait_until(scraped, timeout=30, what="both jobs scraped")
            up = {r["metric"]["job"]: r["value"][1] for r in
                  (await http.get(f"{prom.url}/api/v1/query", params={"query": "up"})).json()["data"]["result"]}
            kpis = (await http.get(f"{prom.url}/api/v1/query", params={"query": "count by (job) (cx_nps_responses_total)"}
                                   )).json()["data"]["result"]
    assert up == {"reporting": "1", "anonymous": "0"}
    assert [r["metric"]["job"] for r in kpis] == ["reporting"]
