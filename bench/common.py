"""What every benchmark records: date, machine and the exact command."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx

KEEP_ENV = "BENCH_KEEP"
"""Set (to anything) to keep every run's work directory (data, logs, mails) for a look afterwards."""


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            kib = int(f.readline().split()[1])
        return f"{kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        return "unknown"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (NaN when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


@contextlib.contextmanager
def work_dir(name: str) -> Iterator[Path]:
    """A fresh directory for one run's PostgreSQL data, logs and mails (hundreds of MB), removed
    when the run ends. Kept, and its path printed, when the run fails or ``BENCH_KEEP`` is set."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))
    try:
        yield work
    except BaseException:
        print(f"bench: run failed; its logs and data are kept in {work}", file=sys.stderr)
        raise
    if os.environ.get(KEEP_ENV):
        print(f"bench: work directory kept ({KEEP_ENV}): {work}", file=sys.stderr)
    else:
        shutil.rmtree(work, ignore_errors=True)


def header(title: str) -> str:
    """A Markdown heading plus the date, machine and command of this run."""
    command = " ".join(shlex.quote(a) for a in [os.path.relpath(sys.executable), *sys.argv])
    return "\n".join(
        [
            f"## {title}",
            "",
            f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
            f"- machine: {platform.node()} — {cpu_model()}, {os.cpu_count()} cores, {memory_gib()}, "
            f"{platform.system()} {platform.release()}, Python {platform.python_version()}",
            f"- command: `{command}`",
            "",
        ]
    )


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (nearest rank), NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


_LAG_SERIES = re.compile(r'^keymoment_consumer_lag_messages\{([^}]*)\}', re.M)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def all_partitions_fetched(expositions: list[str], *, partitions: int) -> bool:
    """Whether every process exposes consumer lag, and every (group, topic) among them has it for
    ``partitions`` partitions (replicas of a group together): each group fetched from all of its."""
    seen: dict[tuple[str, str], set[str]] = {}
    for text in expositions:
        series = [dict(_LABEL.findall(labels)) for labels in _LAG_SERIES.findall(text)]
        if not series:
            return False
        for s in series:
            seen.setdefault((s["group"], s["topic"]), set()).add(s["partition"])
    return bool(seen) and all(len(p) >= partitions for p in seen.values())


async def consumers_assigned(metrics_urls: list[str], *, partitions: int, timeout: float = 120.0) -> float:
    """Wait until every consumer group of these processes (``/metrics`` URLs) has fetched from every
    partition of each topic it reads (:func:`all_partitions_fetched`), so the load meets consumers
    that are working, not ones still joining their group (on Tansu a join takes seconds).
    Returns the seconds waited."""
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=5) as client:
        while True:
            texts = []
            for url in metrics_urls:
                try:
                    texts.append((await client.get(url)).text)
                except httpx.HTTPError:
                    texts.append("")
            if all_partitions_fetched(texts, partitions=partitions):
                return time.monotonic() - started
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"consumers not assigned after {timeout:.0f}s")
            await asyncio.sleep(0.2)
