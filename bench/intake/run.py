"""Intake benchmark (issue 3, Speed). Starts its own Tansu broker, embedded
PostgreSQL, intake (``python -m services.intake``, one uvicorn worker) and the
reference bare FastAPI app (``bench/intake/bare.py``, one uvicorn worker), then
measures with one load generator (``bench/intake/load.py``, keep-alive raw HTTP/1.1):

(a) ``POST /v1/feedback`` throughput, intake vs the bare endpoint that only
    validates ``FeedbackIn``, alternated (bare, intake, bare, intake) — target >= 0.75x;
(b) batch ingest with 1,000-item batches — target >= 20,000 feedback/s;
(c) accept latency at a paced 1,000 requests/s (open loop) — target p99 <= 50 ms.

    python -m bench.intake.run [--seconds 6] [--write]

``--write`` stores the Markdown in bench/intake/RESULTS.md. No prerequisites beyond
the project's own environment (Tansu and PostgreSQL come from its packages).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bench.common import cpu_seconds, header, work_dir
from bench.intake.load import build_request, closed_loop, open_loop
from keymoment.devstack.stack import ServiceSpec, Stack

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEV_KEY = "km_dev_bench-key-not-secret"

SAMPLES = [
    {"channel": "kiosk", "rating": {"scale": "mot", "value": -2}, "text": "排队太久了，收银台只开了一个",
     "location": "store-12", "touchpoint": "checkout", "kiosk": {"device_id": "kiosk-12-exit"}},
    {"channel": "web", "text": "The refund took three weeks and nobody answered my emails.",
     "rating": {"scale": "csat", "value": 1}, "customer": {"id": "C-1029", "email": "li.wei@example.com"},
     "touchpoint": "refund", "occurred_at": "2026-05-01T09:30:00+08:00", "attributes": {"order_id": "SO-55812"}},
    {"channel": "phone", "text": "客户反映航班延误后没有收到任何通知，要求补偿。", "touchpoint": "call centre",
     "phone": {"agent_id": "A-207", "call_id": "CALL-88123", "duration_seconds": 412, "direction": "inbound"}},
    {"channel": "kiosk", "rating": {"scale": "mot", "value": 3}, "location": "store-7", "touchpoint": "exit"},
]


BARE = ServiceSpec("bare", (sys.executable, "-m", "bench.intake.bare", "--port", "{port}"), ready_path="/docs",
                   ready_status=(200, 404, 405))


async def measure(seconds: float, connections: int) -> dict:
    env = {"PYTHONPATH": str(ROOT), "KEYMOMENT_ENV": "dev", "INTAKE_DEV_API_KEY": DEV_KEY, "LOG_LEVEL": "WARNING"}
    with work_dir("intake") as work, Stack(work, services=("intake", BARE), database="bench", env=env) as stack:
        intake_port, bare_port = stack.port("intake"), stack.port("bare")
        intake, bare = stack.process("intake"), stack.process("bare")

        auth = {"X-API-Key": DEV_KEY}
        singles = [build_request("127.0.0.1", "/v1/feedback", json.dumps(s, ensure_ascii=False).encode(), auth)
                   for s in SAMPLES]
        # Warm-up (JIT-free Python still warms caches, connections, topic metadata).
        await closed_loop("127.0.0.1", intake_port, singles, connections=8, seconds=1.0)
        await closed_loop("127.0.0.1", bare_port, singles, connections=8, seconds=1.0)

        async def timed(process, port: int, requests: list[bytes], **kw):
            """A closed-loop run and the server's CPU microseconds per request in it."""
            before = cpu_seconds(process.pid)
            result = await closed_loop("127.0.0.1", port, requests, **kw)
            return result, (cpu_seconds(process.pid) - before) / max(result.requests, 1) * 1e6

        rounds, cpu = [], {"bare": [], "intake": []}
        for _ in range(2):
            b, b_cpu = await timed(bare, bare_port, singles, connections=connections, seconds=seconds)
            i, i_cpu = await timed(intake, intake_port, singles, connections=connections, seconds=seconds)
            rounds.append((b, i))
            cpu["bare"].append(b_cpu)
            cpu["intake"].append(i_cpu)
        bare_rate = sum(b.rate for b, _ in rounds) / len(rounds)
        intake_rate = sum(i.rate for _, i in rounds) / len(rounds)
        intake_statuses: dict[int, int] = {}
        for _, i in rounds:
            for k, v in i.statuses.items():
                intake_statuses[k] = intake_statuses.get(k, 0) + v

        batch_body = json.dumps([SAMPLES[n % len(SAMPLES)] for n in range(1000)], ensure_ascii=False).encode()
        batch_req = [build_request("127.0.0.1", "/v1/feedback:batch", batch_body, auth)]
        batch, batch_cpu = await timed(intake, intake_port, batch_req, connections=4, seconds=seconds)

        paced = await open_loop("127.0.0.1", intake_port, singles, rate=1000, seconds=seconds, connections=200)
        return {
            "seconds_per_run": seconds, "connections": connections,
            "bare_rps": bare_rate, "intake_rps": intake_rate, "ratio": intake_rate / bare_rate,
            "rounds": [(round(b.rate), round(i.rate)) for b, i in rounds], "intake_statuses": intake_statuses,
            "bare_cpu_us": sum(cpu["bare"]) / 2, "intake_cpu_us": sum(cpu["intake"]) / 2,
            "batch_cpu_us_per_item": batch_cpu / 1000,
            "batch_items_per_s": batch.rate * 1000, "batch_statuses": batch.statuses,
            "paced_rate": paced.rate, "paced_p50_ms": paced.percentile(50) * 1000,
            "paced_p99_ms": paced.percentile(99) * 1000, "paced_max_ms": max(paced.latencies) * 1000,
            "paced_statuses": paced.statuses, "paced_requests": paced.requests,
        }


def report(r: dict) -> str:
    ok = lambda cond: "met" if cond else "MISSED"  # noqa: E731
    return "\n".join([
        header("intake: accept throughput, batch ingest, paced latency"),
        "",
        "Real Tansu broker and embedded PostgreSQL; intake and the bare reference each one uvicorn worker; "
        f"one load generator (keep-alive HTTP/1.1, {r['connections']} connections, {r['seconds_per_run']:g} s per run), "
        "all on the same machine (the generator shares its cores).",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| bare FastAPI, validates `FeedbackIn` | {r['bare_rps']:,.0f} req/s | reference | |",
        f"| intake `POST /v1/feedback` (202 after Kafka ack) | {r['intake_rps']:,.0f} req/s | | |",
        f"| ratio intake / bare | {r['ratio']:.2f}x | >= 0.75x | {ok(r['ratio'] >= 0.75)} |",
        f"| server CPU per request: bare / intake | {r['bare_cpu_us']:.0f} / {r['intake_cpu_us']:.0f} µs "
        f"({r['bare_cpu_us'] / r['intake_cpu_us']:.2f}x) | | |",
        f"| batch ingest, 1,000-item batches | {r['batch_items_per_s']:,.0f} feedback/s | >= 20,000/s | "
        f"{ok(r['batch_items_per_s'] >= 20_000)} |",
        f"| batch ingest: intake CPU per feedback | {r['batch_cpu_us_per_item']:.0f} µs | | |",
        f"| accept latency at {r['paced_rate']:,.0f} req/s paced: p50 / p99 / max | {r['paced_p50_ms']:.1f} / "
        f"{r['paced_p99_ms']:.1f} / {r['paced_max_ms']:.1f} ms | p99 <= 50 ms | {ok(r['paced_p99_ms'] <= 50)} |",
        "",
        f"Rounds (bare, intake) req/s: {r['rounds']}; statuses: single {r['intake_statuses']}, "
        f"batch {r['batch_statuses']}, paced {r['paced_statuses']}.",
        "",
        NOTES,
    ])


NOTES = """### How to read these figures

- Throughput is what one load generator (a Python process on the same two cores) gets out of
  each server; near 8,000-9,000 req/s the generator itself is close to a full core, so both
  servers may be held back by it. The CPU each server spent per request (from /proc, user +
  system, over the same runs) does not depend on the generator: it is the fairer comparison.
- Intake answers `POST /v1/feedback` with a plain ASGI handler below FastAPI's routing
  (`services/intake/api/hot_path.py`; same checks and answers as the FastAPI route, proven by
  `tests/integration/intake/test_hot_path.py`), so it skips the dependency solving and request
  wrappers the bare reference pays, and can be cheaper per request although it also
  authenticates, builds the CloudEvent and waits for Kafka's `acks=all`.
- Kafka sends are coalesced: every request in one event-loop turn joins one flush that writes
  one record batch per partition and waits for its acknowledgement (`shared.kafka.Publisher`).
- Both processes freeze their start-up objects out of the garbage collector and collect the
  young generation every 10,000 allocations (`shared.runtime.tune_gc`, applied to the bare
  reference too); before that, batch ingest was ~18,000 feedback/s.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.intake.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0, help="length of each measured run")
    parser.add_argument("--connections", type=int, default=64, help="connections for the throughput runs")
    parser.add_argument("--write", action="store_true", help="store the Markdown in bench/intake/RESULTS.md")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.seconds, args.connections))
    text = report(result)
    print(text)
    if args.write:
        (HERE / "RESULTS.md").write_text("# Intake benchmark\n\n" + text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
