"""A small keep-alive HTTP/1.1 load generator on raw asyncio streams (no
client library overhead to speak of): closed loop (N connections as fast as
they can) or open loop (requests paced at a fixed rate, latency measured from
the scheduled send time so a stall is not hidden)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from bench.common import percentile


@dataclass
class Result:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        return percentile(self.latencies, p)


def build_request(host: str, path: str, body: bytes, headers: dict[str, str], *, method: str = "POST") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}",
             *(["Content-Type: application/json", f"Content-Length: {len(body)}"] if method != "GET" else []),
             *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _roundtrip(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
            break
    if length:
        await reader.readexactly(length)
    return status


async def closed_loop(host: str, port: int, requests: list[bytes], *, connections: int, seconds: float) -> Result:
    result = Result()
    deadline = time.perf_counter() + seconds

    async def worker(offset: int) -> None:
        reader, writer = await asyncio.open_connection(host, port)
        i = offset
        try:
            while time.perf_counter() < deadline:
                status = await _roundtrip(reader, writer, requests[i % len(requests)])
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.requests += 1
                i += connections
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(connections)))
    result.seconds = time.perf_counter() - started
    return result


async def open_loop(host: str, port: int, requests: list[bytes], *, rate: float, seconds: float,
                    connections: int) -> Result:
    """Send ``rate`` requests/s for ``seconds``; each connection takes the next scheduled slot when free."""
    result = Result()
    total = int(rate * seconds)
    interval = 1.0 / rate
    started = time.perf_counter()
    next_slot = 0
    lock = asyncio.Lock()

    async def worker() -> None:
        nonlocal next_slot
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while True:
                async with lock:
                    slot = next_slot
                    next_slot += 1
                if slot >= total:
                    return
                due = started + slot * interval
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                status = await _roundtrip(reader, writer, requests[slot % len(requests)])
                result.latencies.append(time.perf_counter() - due)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                result.requests += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    result.seconds = time.perf_counter() - started
    return result
