"""`keymoment dev` (what `make dev` runs), on ports of its own (``--port-base``):
every component ready, then SIGINT leaves no process and no listening port behind.

How long start-up and stop take is a benchmark figure (``python -m bench.devstack.run``),
not asserted here: the timeouts below are generous so a busy machine is no failure.
"""

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from keymoment.devstack.devrun import DevRun, running
from keymoment.devstack.ports import free_port_block, port_in_use
from keymoment.devstack.stack import Ports

ROOT = Path(__file__).resolve().parents[2]
PORT_COUNT = 8  # Ports.from_base: four services, broker, PostgreSQL, SMTP sink, intake's SMTP listener
READY_TIMEOUT = 180.0
STOP_TIMEOUT = 60.0

pytestmark = pytest.mark.e2e


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def _all_ports(ports: Ports) -> list[int]:
    return [*ports.services.values(), ports.kafka, ports.postgres, ports.smtp, ports.intake_smtp]


def test_dev_stack_starts_ready_and_stops_clean(tmp_path):
    base = free_port_block(PORT_COUNT)
    dev = DevRun(tmp_path / "var", base, cwd=ROOT)
    assert sorted(_all_ports(dev.ports)) == list(range(base, base + PORT_COUNT))
    children: set[int] = set()
    try:
        dev.wait_for(timeout=READY_TIMEOUT)
        dev.wait_for("Ctrl-C stops everything.", timeout=READY_TIMEOUT)  # the banner's last line
        text = dev.output
        for name, port in dev.ports.services.items():
            url = f"http://127.0.0.1:{port}"
            assert _ready(url), f"{name} /readyz not 200"
            assert name in text and url in text
        assert f"127.0.0.1:{dev.ports.kafka}" in text and f"127.0.0.1:{dev.ports.postgres}/keymoment" in text
        assert f"smtp://127.0.0.1:{dev.ports.smtp}" in text
        assert port_in_use(dev.ports.intake_smtp), "intake's SMTP listener is not listening"
        api_key = (tmp_path / "var" / "dev-api-key").read_text().strip()
        admin = (tmp_path / "var" / "dev-admin-token").read_text().strip()
        assert api_key and admin and api_key != admin
        assert f"dev API key (all channels, unlimited): {api_key}" in text
        # the kiosk link carries its key (in the fragment), so the kiosk is set up when opened
        kiosk = re.search(r"kiosk page: (\S+)", text).group(1)
        intake = f"http://127.0.0.1:{dev.ports.services['intake']}"
        assert kiosk.startswith(f"{intake}/kiosk?location=") and kiosk.endswith(f"#key={api_key}")
        with urllib.request.urlopen(kiosk.split("#")[0], timeout=10) as r:
            assert r.status == 200
        # the seeded demo survey answers
        demo = re.search(r"demo survey: (\S+)", text).group(1)
        assert demo == f"http://127.0.0.1:{dev.ports.services['survey']}/s/demo"
        with urllib.request.urlopen(demo, timeout=10) as r:
            page = r.read().decode()
        assert r.status == 200 and 'name="q.feeling"' in page and page.count("<svg") == 7
        children = dev.descendants()
        assert len(children) >= 7, children  # broker, PostgreSQL, SMTP sink, four services
    finally:
        dev.interrupt(timeout=STOP_TIMEOUT)
    assert dev.process.returncode == 0, dev.output
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(port_in_use(p) for p in _all_ports(dev.ports)):
        time.sleep(0.1)
    assert [p for p in _all_ports(dev.ports) if port_in_use(p)] == [], "ports still listening after stop"
    assert [pid for pid in children if running(pid)] == [], "processes left behind"
    patterns = [str(tmp_path), f"tansu broker --listener-url tcp://127.0.0.1:{dev.ports.kafka}"]
    leftovers = [
        pid for pattern in patterns
        for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    ]
    assert leftovers == [], f"processes left behind: {leftovers}"


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    base = free_port_block(PORT_COUNT)
    survey = Ports.from_base(base).services["survey"]
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", survey))
        holder.listen()
        done = subprocess.run(
            [sys.executable, "-m", "keymoment", "dev", "--var", str(tmp_path / "var"), "--port-base", str(base)],
            cwd=ROOT, capture_output=True, text=True, timeout=READY_TIMEOUT,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        f"keymoment dev: port {survey} (survey (HTTP)) is already in use; stop whatever holds it"
    )
    assert "Traceback" not in done.stderr


def test_the_default_ports_are_the_readme_ones():
    ports = Ports.dev()
    assert dict(ports.services) == {"intake": 8001, "survey": 8002, "alerts": 8003, "reporting": 8004}
    assert (ports.kafka, ports.postgres, ports.smtp, ports.intake_smtp) == (9092, 5433, 1025, 2525)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for port in (*ports.services.values(), ports.kafka, ports.postgres, ports.smtp):
        assert f"127.0.0.1:{port}" in readme, port
    assert f"SMTP listener on port {ports.intake_smtp}" in readme
