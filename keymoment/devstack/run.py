"""``keymoment dev``: the whole system on one machine, on embedded defaults.

Starts a Kafka-protocol broker (Tansu), PostgreSQL (data kept in ./var/pg),
an SMTP sink storing mail under ./var/mail and the four services, waits until
each is ready and prints one line per component. SIGINT / SIGTERM stop
everything in order within 10 seconds.

Setting ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` or ``SMTP_HOST`` in the
environment points the services at an external component instead of starting
the embedded one. ``--port-base N`` moves every port to N..N+7 (services,
broker, PostgreSQL, SMTP sink, intake's SMTP listener), e.g. to run a second
stack beside the first.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import sys
import time
from pathlib import Path

from keymoment.devstack.stack import KAFKA, POSTGRES, SMTP, External, PortInUse, Ports, Stack, StackError

DEV_PORTS = Ports.dev()
SERVICES = dict(DEV_PORTS.services)
KAFKA_PORT = DEV_PORTS.kafka
POSTGRES_PORT = DEV_PORTS.postgres
SMTP_SINK_PORT = DEV_PORTS.smtp
INTAKE_SMTP_PORT = DEV_PORTS.intake_smtp


def secret(var: Path, name: str, prefix: str) -> str:
    """A dev secret kept in ``var/<name>`` across runs (created on first use)."""
    path = var / name
    if path.exists() and path.read_text().strip():
        return path.read_text().strip()
    value = f"{prefix}{secrets.token_urlsafe(24)}"
    path.write_text(value + "\n")
    path.chmod(0o600)
    return value


def external_components() -> External:
    smtp = None
    if os.environ.get("SMTP_HOST"):
        smtp = (os.environ["SMTP_HOST"], int(os.environ.get("SMTP_PORT", "25")))
    return External(kafka=os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or None,
                    database_url=os.environ.get("DATABASE_URL") or None, smtp=smtp)


def build(var: Path, ports: Ports) -> Stack:
    api_key = secret(var, "dev-api-key", "km_dev_")
    admin_token = secret(var, "dev-admin-token", "kmadmin_")
    signing_key = secret(var, "dev-signing-key", "")
    stack: Stack

    def ready(name: str) -> None:
        if name == KAFKA:
            if stack.external.kafka:
                line("kafka", stack.external.kafka, "external")
            else:
                line("kafka (tansu)", stack.bootstrap_servers, "ready")
        elif name == POSTGRES:
            if stack.external.database_url:
                line("postgresql", "(DATABASE_URL)", "external")
            else:
                line("postgresql", f"postgresql://127.0.0.1:{stack.postgres.port}/keymoment", "ready")
        elif name == SMTP:
            host, port = stack.smtp_address
            if stack.external.smtp:
                line("smtp", f"{host}:{port}", "external")
            else:
                line("smtp sink", f"smtp://{host}:{port}  (mail in {stack.mail_dir})", "ready")
        else:
            line(name, stack.url(name), "ready")

    env = {"ADMIN_TOKEN": admin_token, "INTAKE_DEV_API_KEY": api_key, "LINK_SIGNING_KEY": signing_key}
    if "SURVEY_QUIET_HOURS" not in os.environ:
        env["SURVEY_QUIET_HOURS"] = ""  # invitations go out at once at any hour while you try them
    stack = Stack(
        var, smtp=True, services=tuple(ports.services), intake_smtp=True, ports=ports,
        external=external_components(), database="keymoment", on_ready=ready, env=env,
    )
    return stack


def banner(stack: Stack, var: Path, demo_survey: str | None) -> None:
    print(f"\nall components ready in {stack.startup_seconds:.1f}s", flush=True)
    print(f"dev API key (all channels, unlimited): {stack.env['INTAKE_DEV_API_KEY']}   [{var / 'dev-api-key'}]",
          flush=True)
    print(f"dev admin token (management APIs):    {stack.env['ADMIN_TOKEN']}   [{var / 'dev-admin-token'}]",
          flush=True)
    # The key travels in the fragment: the kiosk keeps it on the device and never sends it in a URL.
    print(f"kiosk page: {stack.url('intake')}/kiosk?location=demo-store&touchpoint=checkout"
          f"#key={stack.env['INTAKE_DEV_API_KEY']}", flush=True)
    if demo_survey:
        print(f"demo survey: {demo_survey}", flush=True)
    print(f"API docs:   {stack.url('intake')}/docs  {stack.url('survey')}/docs", flush=True)
    print("Ctrl-C stops everything.", flush=True)


def seed_demo_survey(stack: Stack) -> str | None:
    """The demo survey's public link (created on first start; kept in ./var/pg across restarts)."""
    from services.survey.demo import seed  # noqa: PLC0415 - dev only

    try:
        return seed(stack.url("survey"), stack.env["ADMIN_TOKEN"])
    except Exception as exc:  # the stack works without it: say so and go on
        print(f"keymoment dev: the demo survey was not created: {exc}", file=sys.stderr, flush=True)
        return None


def line(name: str, where: str, state: str) -> None:
    print(f"  {name:<14} {where:<52} {state}", flush=True)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keymoment dev", description=__doc__.split("\n\n")[0])
    parser.add_argument("--var", type=Path, default=Path("var"), help="state directory (default ./var)")
    parser.add_argument("--port-base", type=int, metavar="N",
                        help="listen on N..N+7 instead of 8001-8004, 9092, 5433, 1025 and 2525")
    args = parser.parse_args(argv)
    args.var.mkdir(parents=True, exist_ok=True)
    var = args.var.resolve()
    stack = build(var, Ports.from_base(args.port_base) if args.port_base else DEV_PORTS)

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        banner(stack, var, seed_demo_survey(stack))
        while True:
            for name, code in stack.exited():
                print(f"keymoment dev: {name} exited (code {code}); stopping", file=sys.stderr)
                return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except PortInUse as exc:
        print(f"keymoment dev: {exc}; stop whatever holds it", file=sys.stderr)
        return 1
    except StackError as exc:
        print(f"keymoment dev: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
