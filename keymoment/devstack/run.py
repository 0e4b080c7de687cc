"""``keymoment dev``: the whole system on one machine, on embedded defaults.

Starts a Kafka-protocol broker (Tansu), PostgreSQL (data kept in ./var/pg),
an SMTP sink storing mail under ./var/mail and the four services, waits until
each is ready and prints one line per component. SIGINT / SIGTERM stop
everything in order within 10 seconds.

Setting ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` or ``SMTP_HOST`` in the
environment points the services at an external component instead of starting
the embedded one.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from keymoment.devstack.ports import die_with_parent, port_in_use, wait_for_port

SERVICES = {"intake": 8001, "survey": 8002, "alerts": 8003, "reporting": 8004}
KAFKA_PORT = 9092
POSTGRES_PORT = 5433
SMTP_SINK_PORT = 1025
INTAKE_SMTP_PORT = 2525
STOP_BUDGET_S = 9.0


@dataclass
class Child:
    name: str
    process: subprocess.Popen
    stop_signal: int = signal.SIGTERM


class DevStack:
    def __init__(self, var: Path) -> None:
        self.var = var
        self.children: list[Child] = []
        self.postgres = None
        self.broker = None
        self.stopping = False

    # ------------------------------------------------------------------ secrets
    def _secret(self, name: str, prefix: str) -> str:
        path = self.var / name
        if path.exists() and path.read_text().strip():
            return path.read_text().strip()
        value = f"{prefix}{secrets.token_urlsafe(24)}"
        path.write_text(value + "\n")
        path.chmod(0o600)
        return value

    # ------------------------------------------------------------------ start
    def check_ports(self, external: dict[str, str]) -> None:
        wanted = {f"{name} (HTTP)": port for name, port in SERVICES.items()}
        wanted["intake SMTP listener"] = INTAKE_SMTP_PORT
        if "kafka" not in external:
            wanted["kafka broker"] = KAFKA_PORT
        if "postgres" not in external:
            wanted["postgresql"] = POSTGRES_PORT
        if "smtp" not in external:
            wanted["smtp sink"] = SMTP_SINK_PORT
        for what, port in wanted.items():
            if port_in_use(port):
                raise SystemExit(f"keymoment dev: port {port} ({what}) is already in use; stop whatever holds it")

    def spawn(self, name: str, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        handle = log.open("ab")
        process = subprocess.Popen(
            args, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent,
        )
        handle.close()
        self.children.append(Child(name, process))
        return process

    def start(self) -> None:
        var = self.var
        (var / "log").mkdir(parents=True, exist_ok=True)
        (var / "mail").mkdir(parents=True, exist_ok=True)
        external = {}
        if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            external["kafka"] = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
        if os.environ.get("DATABASE_URL"):
            external["postgres"] = os.environ["DATABASE_URL"]
        if os.environ.get("SMTP_HOST"):
            external["smtp"] = f"{os.environ['SMTP_HOST']}:{os.environ.get('SMTP_PORT', '25')}"
        self.check_ports(external)
        api_key = self._secret("dev-api-key", "km_dev_")
        admin_token = self._secret("dev-admin-token", "kmadmin_")
        signing_key = self._secret("dev-signing-key", "")
        started = time.monotonic()

        if "kafka" in external:
            bootstrap = external["kafka"]
            line("kafka", bootstrap, "external")
        else:
            from keymoment.devstack.broker import TansuBroker

            self.broker = TansuBroker(KAFKA_PORT, var / "log" / "broker.log")
            self.broker.start()
            bootstrap = self.broker.bootstrap_servers
            line("kafka (tansu)", bootstrap, "ready")

        if "postgres" in external:
            database_url = external["postgres"]
            line("postgresql", "(DATABASE_URL)", "external")
        else:
            from keymoment.devstack.postgres import EmbeddedPostgres

            self.postgres = EmbeddedPostgres(var / "pg", POSTGRES_PORT, var / "log" / "postgres.log")
            self.postgres.start()
            self.postgres.create_database("keymoment")
            database_url = self.postgres.dsn("keymoment")
            line("postgresql", f"postgresql://127.0.0.1:{POSTGRES_PORT}/keymoment", "ready")

        if "smtp" in external:
            smtp_host, smtp_port = os.environ["SMTP_HOST"], os.environ.get("SMTP_PORT", "25")
            line("smtp", external["smtp"], "external")
        else:
            smtp_host, smtp_port = "127.0.0.1", str(SMTP_SINK_PORT)
            sink = self.spawn(
                "smtp sink",
                [sys.executable, "-m", "keymoment.devstack.smtp_sink", "--port", smtp_port, "--dir", str(var / "mail")],
                dict(os.environ), var / "log" / "smtp-sink.log",
            )
            wait_for_port(SMTP_SINK_PORT, alive=lambda: sink.poll() is None)
            line("smtp sink", f"smtp://127.0.0.1:{smtp_port}  (mail in {var / 'mail'})", "ready")

        base_env = {
            **os.environ,
            "KEYMOMENT_ENV": os.environ.get("KEYMOMENT_ENV", "dev"),
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "DATABASE_URL": database_url,
            "SMTP_HOST": smtp_host,
            "SMTP_PORT": smtp_port,
            "ADMIN_TOKEN": admin_token,
            "INTAKE_DEV_API_KEY": api_key,
            "INTAKE_SMTP_PORT": str(INTAKE_SMTP_PORT),
            "LINK_SIGNING_KEY": signing_key,
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{SERVICES['alerts']}",
            "SURVEY_PUBLIC_BASE_URL": f"http://127.0.0.1:{SERVICES['survey']}",
            "PYTHONUNBUFFERED": "1",
        }
        for name, port in SERVICES.items():
            self.spawn(
                name, [sys.executable, "-m", f"services.{name}"], {**base_env, "PORT": str(port)},
                var / "log" / f"{name}.log",
            )
        pending = dict(SERVICES)
        deadline = time.monotonic() + 60
        while pending:
            for name, port in list(pending.items()):
                child = next(c for c in self.children if c.name == name)
                if child.process.poll() is not None:
                    raise RuntimeError(
                        f"{name} exited with code {child.process.returncode}; see {var / 'log' / (name + '.log')}:\n"
                        + tail(var / "log" / f"{name}.log")
                    )
                if ready(port):
                    line(name, f"http://127.0.0.1:{port}", "ready")
                    del pending[name]
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready after 60s: {', '.join(pending)}; logs in {var / 'log'}")
            if pending:
                time.sleep(0.2)
        print(f"\nall components ready in {time.monotonic() - started:.1f}s", flush=True)
        print(f"dev API key (all channels, unlimited): {api_key}   [{var / 'dev-api-key'}]", flush=True)
        print(f"dev admin token (management APIs):    {admin_token}   [{var / 'dev-admin-token'}]", flush=True)
        print(f"kiosk page: http://127.0.0.1:{SERVICES['intake']}/kiosk?location=demo-store&touchpoint=checkout", flush=True)
        print(f"API docs:   http://127.0.0.1:{SERVICES['intake']}/docs", flush=True)
        print("Ctrl-C stops everything.", flush=True)

    # ------------------------------------------------------------------ stop
    def stop(self) -> None:
        if self.stopping:
            return
        self.stopping = True
        deadline = time.monotonic() + STOP_BUDGET_S
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.send_signal(child.stop_signal)
        for child in reversed(self.children):
            remaining = max(deadline - 3 - time.monotonic(), 0.1)
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        if self.broker is not None:
            self.broker.stop(timeout=1.0)
        if self.postgres is not None:
            self.postgres.stop(timeout=max(deadline - time.monotonic(), 0.5))


def line(name: str, where: str, state: str) -> None:
    print(f"  {name:<14} {where:<52} {state}", flush=True)


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keymoment dev", description=__doc__.split("\n\n")[0])
    parser.add_argument("--var", type=Path, default=Path("var"), help="state directory (default ./var)")
    args = parser.parse_args(argv)
    args.var.mkdir(parents=True, exist_ok=True)
    stack = DevStack(args.var.resolve())

    def on_signal(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
        while True:
            for child in stack.children:
                if child.process.poll() is not None:
                    print(f"keymoment dev: {child.name} exited (code {child.process.returncode}); stopping", file=sys.stderr)
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
        return 0
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return 1
        raise
    except RuntimeError as exc:
        print(f"keymoment dev: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
