"""keymoment.devstack.Stack without broker or PostgreSQL: small processes of its own
(an HTTP server, one that fails), the SMTP sink and its mailbox, fixed ports,
and the test-level markers the harness sets by directory."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from keymoment.devstack.ports import free_port_block, port_in_use
from keymoment.devstack.stack import SMTP, External, PortInUse, Ports, ServiceSpec, Stack, StackError

ROOT = Path(__file__).resolve().parents[3]
HTTP = ServiceSpec("web", (sys.executable, "-m", "http.server", "{port}", "--bind", "127.0.0.1"), ready_path="/")


def bare(tmp_path: Path, **kwargs) -> Stack:
    return Stack(tmp_path, kafka=False, postgres=False, **kwargs)


def test_a_service_is_ready_restarted_and_killed(tmp_path):
    with bare(tmp_path, services=[HTTP], env={"KEYMOMENT_TEST_MARK": "x"}) as stack:
        assert stack.url("web") == f"http://127.0.0.1:{stack.port('web')}"
        assert stack.services["web"].env["PORT"] == str(stack.port("web"))
        assert stack.services["web"].env["KEYMOMENT_TEST_MARK"] == "x"
        first = stack.process("web").pid
        stack.kill("web")
        assert stack.exited() == []  # killed on purpose: not reported as a crash
        stack.start_component("web")
        assert stack.process("web").pid != first and port_in_use(stack.port("web"))
        stack.process("web").terminate()
        stack.process("web").wait()
        assert stack.exited() == [("web", -15)]
        stack.restart("web")
        assert stack.exited() == []
    assert not port_in_use(stack.port("web"))


def test_a_component_that_fails_stops_everything_and_shows_its_log(tmp_path):
    failing = ServiceSpec("broken", (sys.executable, "-c", "print('DATABASE_URL is not set'); raise SystemExit(3)"))
    stack = bare(tmp_path, services=[HTTP, failing])
    with pytest.raises(StackError) as failure:
        stack.start()
    message = str(failure.value)
    assert message.splitlines()[0].startswith("broken exited with code 3")
    assert "DATABASE_URL is not set" in message and "--- web log" in message
    assert stack.process("web").poll() is not None  # the healthy one was stopped too


def test_readiness_is_bounded(tmp_path):
    never = ServiceSpec("never", HTTP.args, ready_path="/", ready_status=(599,))
    with pytest.raises(StackError, match=r"not ready after 2s: never"):
        bare(tmp_path, services=[never], ready_timeout=2).start()


def test_a_fixed_port_in_use_is_refused_before_anything_starts(tmp_path):
    base = free_port_block(8)
    ports = Ports.from_base(base)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", ports.services["survey"]))
        holder.listen()
        stack = bare(tmp_path, services=["intake", "survey"], ports=ports)
        with pytest.raises(PortInUse, match=rf"^port {base + 1} \(survey \(HTTP\)\) is already in use$"):
            stack.start()
    assert stack.services == {}


def test_the_smtp_sink_keeps_every_mail_with_its_envelope_and_time(tmp_path):
    with bare(tmp_path, smtp=True) as stack:
        host, port = stack.smtp_address
        with smtplib.SMTP(host, port) as client:
            client.sendmail("alerts@keymoment.example", ["store.manager@example.cn", "ops@example.com"],
                            "Subject: =?utf-8?b?5o6S6Zif5aSq5LmF?=\r\nMessage-ID: <a1@km>\r\n\r\nhello\r\n".encode())
        (mail,) = stack.mailbox.messages()
        assert mail.mail_from == "alerts@keymoment.example"
        assert mail.rcpt_tos == ("store.manager@example.cn", "ops@example.com")
        assert mail.message()["Message-ID"] == "<a1@km>" and mail.message()["Subject"] == "排队太久"
        assert mail.accepted_at > 0 and len(stack.mailbox) == 1
        assert stack.log_paths()[SMTP] == tmp_path.resolve() / "log" / "smtp-sink.log"


def test_services_learn_where_the_components_and_each_other_are(tmp_path):
    fakes = [ServiceSpec(name, HTTP.args, ready_path="/") for name in ("alerts", "survey")]
    external = External(kafka="kafka.internal:9092")
    with bare(tmp_path, smtp=True, services=fakes, intake_smtp=True, external=external) as stack:
        env = stack.services["alerts"].env
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka.internal:9092" == stack.bootstrap_servers
        assert env["PUBLIC_BASE_URL"] == stack.url("alerts")
        assert env["SURVEY_PUBLIC_BASE_URL"] == stack.url("survey")
        assert (env["SMTP_HOST"], int(env["SMTP_PORT"])) == stack.smtp_address
        assert env["INTAKE_SMTP_PORT"] == str(stack.intake_smtp_port)
        assert env["KEYMOMENT_ENV"] in ("dev", os.environ.get("KEYMOMENT_ENV"))


def test_every_test_carries_its_level_marker():
    """tests/integration is all `integration`, tests/e2e all `e2e` (make test-unit selects neither)."""
    for directory, marker in (("tests/integration", "integration"), ("tests/e2e", "e2e")):
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "-m", f"not {marker}",
             directory], cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        assert "no tests collected" in done.stdout and "deselected" in done.stdout, done.stdout + done.stderr
