"""Small helpers for local processes: free ports, port checks, waiting, stopping, log tails."""

from __future__ import annotations

import ctypes
import random
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_port_block(count: int, *, low: int = 20_000, high: int = 32_000) -> int:
    """First port of ``count`` consecutive free ports, picked at random below the
    ephemeral range (where :func:`free_port` and outgoing connections take theirs),
    so that stacks started side by side rarely meet."""
    rng = random.SystemRandom()
    for _ in range(500):
        base = rng.randrange(low, high - count)
        if not any(port_in_use(port) for port in range(base, base + count)):
            return base
    raise RuntimeError(f"no {count} consecutive free ports between {low} and {high}")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
        return False


def wait_for_port(port: int, *, host: str = "127.0.0.1", timeout: float = 20.0, alive=lambda: True) -> None:
    """Wait until something accepts TCP connections on the port (bounded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"process meant to listen on {host}:{port} exited")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout:.0f}s")


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """In a child (preexec): receive ``sig`` when the parent dies, so nothing outlives it."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, int(sig))  # PR_SET_PDEATHSIG
    except OSError:
        pass


def terminate(process: subprocess.Popen | None, timeout: float, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` (if still running), wait up to ``timeout``, then SIGKILL."""
    if process is None:
        return
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
