"""`keymoment dev` (what `make dev` runs): every component ready, then SIGINT
leaves no process and no listening port behind."""

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from keymoment.devstack.ports import port_in_use
from keymoment.devstack.run import INTAKE_SMTP_PORT, KAFKA_PORT, POSTGRES_PORT, SERVICES, SMTP_SINK_PORT

ROOT = Path(__file__).resolve().parents[2]
PORTS = [*SERVICES.values(), KAFKA_PORT, POSTGRES_PORT, SMTP_SINK_PORT, INTAKE_SMTP_PORT]

pytestmark = pytest.mark.e2e


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def test_dev_stack_starts_ready_and_stops_clean(tmp_path):
    busy = [p for p in PORTS if port_in_use(p)]
    if busy:
        pytest.fail(f"dev ports already in use (is a `make dev` running?): {busy}")
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "SMTP_HOST")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "keymoment", "dev", "--var", str(tmp_path / "var")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output: list[str] = []
    try:
        started = time.monotonic()
        for raw in proc.stdout:
            output.append(raw)
            if "all components ready" in raw or proc.poll() is not None:
                break
            assert time.monotonic() - started < 60, "".join(output)
        elapsed = time.monotonic() - started
        text = "".join(output)
        assert "all components ready" in text, text
        assert elapsed < 20, f"took {elapsed:.1f}s to be ready\n{text}"
        for name, port in SERVICES.items():
            assert _ready(port), f"{name} /readyz not 200"
            assert f"{name}" in text and f"http://127.0.0.1:{port}" in text
        api_key = (tmp_path / "var" / "dev-api-key").read_text().strip()
        admin = (tmp_path / "var" / "dev-admin-token").read_text().strip()
        assert api_key and admin and api_key != admin
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(12)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("keymoment dev did not stop within 10 s of SIGINT")
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(port_in_use(p) for p in PORTS):
        time.sleep(0.1)
    assert [p for p in PORTS if port_in_use(p)] == [], "ports still listening after stop"
    patterns = [str(tmp_path), r"-m services\.(intake|survey|alerts|reporting)$", "keymoment.devstack.smtp_sink",
                f"tansu broker --listener-url tcp://127.0.0.1:{KAFKA_PORT}"]
    leftovers = [
        pid for pattern in patterns
        for pid in subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout.split()
    ]
    assert leftovers == [], f"processes left behind: {leftovers}"


def test_a_port_in_use_is_a_one_line_error(tmp_path):
    import socket

    if port_in_use(SERVICES["survey"]):
        pytest.fail("port 8002 already in use")
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind(("127.0.0.1", SERVICES["survey"]))
        holder.listen()
        done = subprocess.run(
            [sys.executable, "-m", "keymoment", "dev", "--var", str(tmp_path / "var")],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
        )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "keymoment dev: port 8002 (survey (HTTP)) is already in use; stop whatever holds it"
    )
    assert "Traceback" not in done.stderr
