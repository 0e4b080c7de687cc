"""One embedded stack: Tansu broker, PostgreSQL, SMTP sink and chosen services.

``keymoment dev``, the test fixtures and every benchmark start their
components through :class:`Stack`, so start-up, readiness, log dumps and the
stop order are written once::

    with Stack(workdir, services=("intake", "reporting"), env={"LOG_LEVEL": "WARNING"}) as stack:
        stack.url("intake"), stack.bootstrap_servers, stack.database_url, stack.mailbox
        stack.restart("kafka")   # fault tests: kill / stop_component / start_component / restart

Every component listens on a free port unless :class:`Ports` names one
(``Ports.dev()`` is what ``make dev`` uses). Start-up waits for each component
with a bounded timeout; when one fails, everything started so far is stopped
and :class:`StackError` carries the tail of every component's log.
Processes are started so that they die with this process (no orphans).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from keymoment.devstack.broker import TansuBroker
from keymoment.devstack.ports import die_with_parent, free_port, port_in_use, tail, terminate, wait_for_port
from keymoment.devstack.smtp_sink import Mailbox

SERVICES = ("intake", "survey", "alerts", "reporting")
KAFKA, POSTGRES, SMTP = "kafka", "postgres", "smtp"
BROKER_STOP_SECONDS = 1.0  # Tansu keeps memory storage only: nothing to flush, so it is killed soon after SIGTERM


class StackError(RuntimeError):
    """A component did not start (the message holds the tail of every log)."""


class PortInUse(StackError):
    """A port asked for is taken; nothing was started."""


@dataclass(frozen=True)
class Ports:
    """Where components listen; ``None`` picks a free port at start."""

    kafka: int | None = None
    postgres: int | None = None
    smtp: int | None = None
    intake_smtp: int | None = None
    services: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def dev(cls) -> Ports:
        """The fixed ports of ``make dev`` (README)."""
        return cls(kafka=9092, postgres=5433, smtp=1025, intake_smtp=2525,
                   services={"intake": 8001, "survey": 8002, "alerts": 8003, "reporting": 8004})

    @classmethod
    def from_base(cls, base: int) -> Ports:
        """Eight consecutive ports: the four services, broker, PostgreSQL, SMTP sink, intake's SMTP listener."""
        return cls(kafka=base + 4, postgres=base + 5, smtp=base + 6, intake_smtp=base + 7,
                   services={name: base + i for i, name in enumerate(SERVICES)})


@dataclass(frozen=True)
class External:
    """Components that already run elsewhere; the stack points the services at them instead."""

    kafka: str | None = None  # bootstrap servers
    database_url: str | None = None
    smtp: tuple[str, int] | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """A process the stack runs: ``{port}`` in ``args`` becomes its port; ready when
    ``GET ready_path`` answers one of ``ready_status``."""

    name: str
    args: tuple[str, ...]
    ready_path: str = "/readyz"
    ready_status: tuple[int, ...] = (200,)
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def service(cls, name: str) -> ServiceSpec:
        """One of the four Keymoment services, run as deployed (``python -m services.<name>``)."""
        if name not in SERVICES:
            raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
        return cls(name, (sys.executable, "-m", f"services.{name}"))


@dataclass
class RunningProcess:
    spec: ServiceSpec
    port: int
    log_path: Path
    env: dict[str, str]
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class Stack:
    """Broker, PostgreSQL, SMTP sink and services under one context manager (see module doc)."""

    def __init__(
        self,
        workdir: Path,
        *,
        kafka: bool = True,
        postgres: bool = True,
        smtp: bool = False,
        services: Sequence[str | ServiceSpec] = (),
        intake_smtp: bool = False,
        ports: Ports | None = None,
        external: External | None = None,
        database: str | None = "keymoment",
        env: Mapping[str, str] | None = None,
        ready_timeout: float = 60.0,
        on_ready: Callable[[str], None] | None = None,
    ) -> None:
        self.workdir = Path(workdir).resolve()
        self.log_dir = self.workdir / "log"
        self.mail_dir = self.workdir / "mail"
        self.external = external or External()
        self.want_kafka = kafka and self.external.kafka is None
        self.want_postgres = postgres and self.external.database_url is None
        self.want_smtp = smtp and self.external.smtp is None
        self.ports = ports or Ports()
        self.database = database
        self.extra_env = dict(env or {})
        self.ready_timeout = ready_timeout
        self.on_ready = on_ready or (lambda _name: None)
        self.specs = [s if isinstance(s, ServiceSpec) else ServiceSpec.service(s) for s in services]
        self.intake_smtp_port: int | None = None
        if intake_smtp:
            self.intake_smtp_port = self.ports.intake_smtp or free_port()
        self.broker: TansuBroker | None = None
        self.postgres = None  # EmbeddedPostgres (imported when started: the wheel is heavy)
        self.smtp_process: subprocess.Popen | None = None
        self.smtp_port: int | None = None
        self.services: dict[str, RunningProcess] = {}
        self.service_ports = {spec.name: self.ports.services.get(spec.name) for spec in self.specs}
        self.env: dict[str, str] = {}
        self.startup_seconds: float | None = None
        self._stopped: set[str] = set()

    # ------------------------------------------------------------------ what callers read
    @property
    def bootstrap_servers(self) -> str:
        if self.external.kafka:
            return self.external.kafka
        if self.broker is None:
            raise StackError("this stack runs no broker")
        return self.broker.bootstrap_servers

    def dsn(self, database: str = "postgres") -> str:
        if self.postgres is None:
            raise StackError("this stack runs no embedded PostgreSQL")
        return self.postgres.dsn(database)

    @property
    def database_url(self) -> str:
        if self.external.database_url:
            return self.external.database_url
        return self.dsn(self.database or "postgres")

    @property
    def smtp_address(self) -> tuple[str, int]:
        if self.external.smtp:
            return self.external.smtp
        if self.smtp_port is None:
            raise StackError("this stack runs no SMTP sink")
        return "127.0.0.1", self.smtp_port

    @property
    def mailbox(self) -> Mailbox:
        """What the SMTP sink received (one .eml file per mail)."""
        return Mailbox(self.mail_dir)

    def url(self, name: str) -> str:
        return self.services[name].url

    def port(self, name: str) -> int:
        return self.services[name].port

    def process(self, name: str) -> subprocess.Popen:
        """The process of a component (``kafka``, ``postgres``, ``smtp`` or a service name)."""
        if name == KAFKA:
            process = self.broker and self.broker.process
        elif name == POSTGRES:
            process = self.postgres and self.postgres.process
        elif name == SMTP:
            process = self.smtp_process
        else:
            process = self.services[name].process if name in self.services else None
        if process is None:
            raise StackError(f"{name} is not part of this stack or never started")
        return process

    def log_paths(self) -> dict[str, Path]:
        paths = {}
        if self.want_kafka:
            paths[KAFKA] = self.log_dir / "broker.log"
        if self.want_postgres:
            paths[POSTGRES] = self.log_dir / "postgres.log"
        if self.want_smtp:
            paths[SMTP] = self.log_dir / "smtp-sink.log"
        paths |= {spec.name: self.log_dir / f"{spec.name}.log" for spec in self.specs}
        return paths

    def log_tails(self, lines: int = 40) -> str:
        """The last lines of every component's log, one section each."""
        return "\n".join(f"--- {name} log ({path}) ---\n{tail(path, lines)}" for name, path in self.log_paths().items())

    def exited(self) -> list[tuple[str, int]]:
        """Processes that ended although nobody stopped them: ``(name, exit code)``."""
        candidates = [(SMTP, self.smtp_process)] + [(n, s.process) for n, s in self.services.items()]
        if self.broker is not None:
            candidates.append((KAFKA, self.broker.process))
        if self.postgres is not None:
            candidates.append((POSTGRES, self.postgres.process))
        return [(name, p.returncode) for name, p in candidates
                if p is not None and name not in self._stopped and p.poll() is not None]

    # ------------------------------------------------------------------ start
    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def check_ports(self) -> None:
        """Raise :class:`PortInUse` for the first fixed port already taken."""
        wanted = {f"{spec.name} (HTTP)": self.ports.services.get(spec.name) for spec in self.specs}
        if self.intake_smtp_port is not None and self.ports.intake_smtp:
            wanted["intake SMTP listener"] = self.intake_smtp_port
        if self.want_kafka:
            wanted["kafka broker"] = self.ports.kafka
        if self.want_postgres:
            wanted["postgresql"] = self.ports.postgres
        if self.want_smtp:
            wanted["smtp sink"] = self.ports.smtp
        for what, port in wanted.items():
            if port is not None and port_in_use(port):
                raise PortInUse(f"port {port} ({what}) is already in use")

    def start(self) -> Stack:
        self.check_ports()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        try:
            for name, embedded, external in ((KAFKA, self.want_kafka, self.external.kafka),
                                             (POSTGRES, self.want_postgres, self.external.database_url),
                                             (SMTP, self.want_smtp, self.external.smtp)):
                if embedded:
                    self.start_component(name)
                elif external:
                    self.on_ready(name)  # in order, so a caller can report it where it would start
            self.service_ports = {name: port or free_port() for name, port in self.service_ports.items()}
            self.env = self._service_env()
            for spec in self.specs:
                self._spawn_service(spec, self.service_ports[spec.name])
            self._wait_services(list(self.services))
        except Exception as exc:
            logs = self.log_tails()
            self.stop()
            headline = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise StackError(f"{headline}\n{logs}") from exc
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started
        return self

    def _service_env(self) -> dict[str, str]:
        env = {**os.environ, "KEYMOMENT_ENV": os.environ.get("KEYMOMENT_ENV", "dev"), "PYTHONUNBUFFERED": "1"}
        if self.want_kafka or self.external.kafka:
            env["KAFKA_BOOTSTRAP_SERVERS"] = self.bootstrap_servers
        if self.want_postgres or self.external.database_url:
            env["DATABASE_URL"] = self.database_url
        if self.want_smtp or self.external.smtp:
            host, port = self.smtp_address
            env |= {"SMTP_HOST": host, "SMTP_PORT": str(port)}
        ports = self.service_ports
        if ports.get("alerts"):
            env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{ports['alerts']}"
        if ports.get("survey"):
            env["SURVEY_PUBLIC_BASE_URL"] = f"http://127.0.0.1:{ports['survey']}"
        if self.intake_smtp_port is not None:
            env["INTAKE_SMTP_PORT"] = str(self.intake_smtp_port)
        return env | self.extra_env

    def start_component(self, name: str) -> None:
        """Start (or start again) one component and wait until it is ready."""
        self._stopped.discard(name)
        if name == KAFKA:
            port = self.broker.port if self.broker else (self.ports.kafka or free_port())
            self.broker = TansuBroker(port, self.log_dir / "broker.log")
            self.broker.start()
        elif name == POSTGRES:
            from keymoment.devstack.postgres import EmbeddedPostgres  # noqa: PLC0415 - heavy, dev only

            port = self.postgres.port if self.postgres else (self.ports.postgres or free_port())
            self.postgres = EmbeddedPostgres(self.workdir / "pg", port, self.log_dir / "postgres.log")
            self.postgres.start()
            if self.database:
                self.postgres.create_database(self.database)
        elif name == SMTP:
            self.smtp_port = self.smtp_port or self.ports.smtp or free_port()
            self.smtp_process = spawn(
                [sys.executable, "-m", "keymoment.devstack.smtp_sink", "--port", str(self.smtp_port),
                 "--dir", str(self.mail_dir)], dict(os.environ), self.log_dir / "smtp-sink.log")
            wait_for_port(self.smtp_port, timeout=self.ready_timeout, alive=lambda: self.smtp_process.poll() is None)
        else:
            running = self.services[name]
            self._spawn_service(running.spec, running.port)
            self._wait_services([name])
            return
        self.on_ready(name)

    def _spawn_service(self, spec: ServiceSpec, port: int) -> None:
        env = {**self.env, **spec.env, "PORT": str(port)}
        log = self.log_dir / f"{spec.name}.log"
        args = [a.replace("{port}", str(port)) for a in spec.args]
        self.services[spec.name] = RunningProcess(spec, port, log, env, spawn(args, env, log))

    def _wait_services(self, names: list[str]) -> None:
        """Poll every service's readiness (bounded); fail fast when one exits."""
        pending = list(names)
        deadline = time.monotonic() + self.ready_timeout
        while pending:
            for name in list(pending):
                running = self.services[name]
                if running.process.poll() is not None:
                    raise StackError(f"{name} exited with code {running.process.returncode}; see {running.log_path}")
                if http_status(running.url + running.spec.ready_path) in running.spec.ready_status:
                    pending.remove(name)
                    self.on_ready(name)
            if pending and time.monotonic() > deadline:
                raise StackError(f"not ready after {self.ready_timeout:.0f}s: {', '.join(pending)}")
            if pending:
                time.sleep(0.2)

    # ------------------------------------------------------------------ stop
    def stop_component(self, name: str, *, timeout: float = 8.0) -> None:
        """Stop one component gracefully (it stays stopped until :meth:`start_component`)."""
        self._stopped.add(name)
        if name == KAFKA and self.broker is not None:
            self.broker.stop(min(timeout, BROKER_STOP_SECONDS))
        elif name == POSTGRES and self.postgres is not None:
            self.postgres.stop(timeout)
        elif name == SMTP:
            terminate(self.smtp_process, timeout)
        elif name in self.services:
            terminate(self.services[name].process, timeout)

    def kill(self, name: str) -> None:
        """SIGKILL one component (a crash, for fault tests)."""
        self._stopped.add(name)
        process = self.process(name)
        if process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, name: str) -> None:
        """Stop then start one component (the broker comes back empty: memory storage)."""
        self.stop_component(name)
        self.start_component(name)

    def stop(self, budget: float = 9.0) -> None:
        """Everything, in order: services (newest first), SMTP sink, broker, PostgreSQL, within ``budget``."""
        deadline = time.monotonic() + budget
        processes = [s.process for s in reversed(self.services.values())] + [self.smtp_process]
        for process in processes:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            terminate(process, max(deadline - 3 - time.monotonic(), 0.1))
        self._stopped |= set(self.services) | {SMTP}
        if self.broker is not None:
            self._stopped.add(KAFKA)
            self.broker.stop(timeout=BROKER_STOP_SECONDS)
        if self.postgres is not None:
            self._stopped.add(POSTGRES)
            self.postgres.stop(timeout=max(deadline - time.monotonic(), 0.5))


def spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """A child in its own session, output appended to ``log``, dying with this process."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        return subprocess.Popen(args, env=env, stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, preexec_fn=die_with_parent)


def http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None
