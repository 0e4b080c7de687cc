"""``keymoment dev`` as a child process, watched line by line: what the e2e test
and the start-up benchmark (bench/devstack) both drive."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from keymoment.devstack.stack import Ports

READY_LINE = "all components ready"


class DevRun:
    """``python -m keymoment dev --var VAR --port-base N``; its output collected as it comes."""

    def __init__(self, var: Path, port_base: int, *, cwd: Path | None = None) -> None:
        self.ports = Ports.from_base(port_base)
        # The dev stack must start its own components, whatever this environment points at.
        env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL", "SMTP_HOST")}
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "keymoment", "dev", "--var", str(var), "--port-base", str(port_base)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True,
        )
        self.lines: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, name="keymoment-dev-output", daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._lines.put(line)
        self._lines.put(None)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_for(self, text: str = READY_LINE, *, timeout: float) -> float:
        """Seconds from the start until a line containing ``text`` appeared."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise TimeoutError(f"no {text!r} after {timeout:.0f}s:\n{self.output}") from None
            if line is None:
                self.process.wait()
                raise RuntimeError(f"keymoment dev exited ({self.process.returncode}) before {text!r}:\n{self.output}")
            self.lines.append(line)
            if text in line:
                return time.monotonic() - self.started

    def descendants(self) -> set[int]:
        """Every process started under this one (the components and their own children)."""
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        found, frontier = set(), {self.process.pid}
        while frontier:
            frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
            found |= frontier
        return found

    def interrupt(self, *, timeout: float) -> float:
        """SIGINT (Ctrl-C); seconds until the process exited (killed after ``timeout``)."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise TimeoutError(f"keymoment dev did not stop within {timeout:.0f}s of SIGINT:\n{self.output}") from None
        while (line := self._lines.get()) is not None:  # the rest of the output (the reader ends at EOF)
            self.lines.append(line)
        return time.monotonic() - sent


def running(pid: int) -> bool:
    """The process exists and is not a zombie (exited, not yet reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
