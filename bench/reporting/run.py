"""Reporting benchmark (issue 6, Speed). Starts its own Tansu broker, embedded
PostgreSQL, intake and reporting (``python -m services.<name>``, one uvicorn
worker each), then measures:

(a) freshness: feedback sent to intake's ``POST /v1/feedback:batch`` at a paced
    1,000 feedback/s (50-item batches every 50 ms, the demo's realistic stream)
    while ``/metrics`` of reporting is polled every 50 ms. The k-th accepted
    feedback counts as reflected at the first poll whose
    ``sum(cx_feedback_total)`` reaches k; its delay is that poll's time minus the
    time intake answered the batch holding it — target p99 <= 2 s;
(b) ``/metrics`` response time with 5,000 label combinations of each place
    counter (cx_feedback_total, cx_mot_scored_total, cx_negative_mot_total:
    15,000 series) written straight into reporting's counter table — target < 100 ms.

    python -m bench.reporting.run [--seconds 20] [--rate 1000] [--write]

Alerts is not started: freshness is measured on ``feedback.received.v1`` ->
``cx_feedback_total``, the path reporting owns.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import time
from pathlib import Path

import asyncpg
import httpx

from bench.common import header, percentile, work_dir
from keymoment.devstack.stack import Stack
from services.reporting.demo import DemoStream

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEV_KEY = "km_dev_bench-key-not-secret"
FEEDBACK_LINE = re.compile(rb"^cx_feedback_total\{[^}]*\} ([0-9.e+]+)$", re.M)


async def freshness(intake_url: str, reporting_url: str, *, rate: float, seconds: float) -> dict:
    batch, tick = 50, 50 / rate
    stream = DemoStream(seed=random.SystemRandom().randrange(1, 10**9), days=0)
    accepted_at: list[float] = []  # one entry per accepted feedback
    polls: list[tuple[float, float]] = []
    scrape_ms: list[float] = []
    statuses: dict[int, int] = {}
    sending = True
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=intake_url, timeout=30, limits=limits,
                                 headers={"X-API-Key": DEV_KEY}) as intake, \
            httpx.AsyncClient(base_url=reporting_url, timeout=10) as reporting:

        async def send_one(items: list[dict]) -> None:
            response = await intake.post("/v1/feedback:batch", json=items)
            now = time.monotonic()
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            if response.status_code == 200:
                accepted_at.extend([now] * response.json()["accepted"])

        async def poll() -> None:
            while sending or (polls and polls[-1][1] - base < len(accepted_at)):
                started = time.monotonic()
                body = (await reporting.get("/metrics")).content
                done = time.monotonic()
                scrape_ms.append((done - started) * 1000)
                polls.append((done, sum(float(v) for v in FEEDBACK_LINE.findall(body))))
                if not sending and done - last_send > 60:
                    break
                await asyncio.sleep(max(0.0, 0.05 - (time.monotonic() - started)))

        base = sum(float(v) for v in FEEDBACK_LINE.findall((await reporting.get("/metrics")).content))
        poller = asyncio.create_task(poll())
        tasks = []
        start = time.monotonic()
        n = 0
        while time.monotonic() - start < seconds:
            due = start + n * tick
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(send_one([stream.item() for _ in range(batch)])))
            n += 1
        await asyncio.gather(*tasks)
        send_elapsed = time.monotonic() - start
        last_send = time.monotonic()
        sending = False
        await poller
    accepted_at.sort()
    delays = []
    i = 0
    for k, t_acc in enumerate(accepted_at, start=1):
        while i < len(polls) and (polls[i][1] - base < k or polls[i][0] < t_acc):
            if polls[i][1] - base >= k and polls[i][0] < t_acc:
                break  # counted before intake's answer arrived: reflected at once
            i += 1
        if i >= len(polls):
            break
        delays.append(max(0.0, polls[i][0] - t_acc))
    return {
        "sent_batches": n, "accepted": len(accepted_at), "statuses": statuses,
        "offered_rate": n * batch / send_elapsed, "reflected": len(delays),
        "p50_s": percentile(delays, 50) if delays else None, "p99_s": percentile(delays, 99) if delays else None,
        "max_s": max(delays) if delays else None,
        "scrape_p50_ms": statistics.median(scrape_ms), "scrape_p99_ms": percentile(scrape_ms, 99),
    }


async def exposition(pool_dsn: str, reporting_url: str, *, combos: int, requests: int) -> dict:
    conn = await asyncpg.connect(pool_dsn)
    try:
        channels = ["web", "kiosk", "email", "phone", "suggestion_box"]
        rows = [(m, channels[i % 5], f"location-{i // 50:03d}", f"touchpoint-{i % 50:02d}", float(i + 1))
                for m in ("feedback", "mot_scored", "negative_mot") for i in range(combos)]
        await conn.executemany(
            """INSERT INTO reporting.kpi_counters (metric, channel, location, touchpoint, value)
               VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING""", rows)
    finally:
        await conn.close()
    async with httpx.AsyncClient(base_url=reporting_url, timeout=10) as http:
        deadline = time.monotonic() + 30
        while True:  # wait for the next snapshot to hold them
            body = (await http.get("/metrics")).content
            if body.count(b"\ncx_feedback_total{") >= combos:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("seeded series did not appear in /metrics")
            await asyncio.sleep(0.1)
        times = []
        for _ in range(requests):
            started = time.perf_counter()
            response = await http.get("/metrics")
            times.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200
        read = re.search(rb"^keymoment_reporting_snapshot_read_seconds ([0-9.e+-]+)$", response.content, re.M)
    return {"series": response.content.count(b"\ncx_"), "bytes": len(response.content), "requests": requests,
            "p50_ms": statistics.median(times), "p99_ms": percentile(times, 99), "max_ms": max(times),
            "snapshot_read_ms": float(read.group(1)) * 1000 if read else None}


async def measure(seconds: float, rate: float, combos: int) -> dict:
    env = {"PYTHONPATH": str(ROOT), "KEYMOMENT_ENV": "dev", "INTAKE_DEV_API_KEY": DEV_KEY, "LOG_LEVEL": "WARNING"}
    with work_dir("reporting") as work, Stack(work, services=("intake", "reporting"), database="bench", env=env) as stack:
        intake_url, reporting_url = stack.url("intake"), stack.url("reporting")
        await freshness(intake_url, reporting_url, rate=rate, seconds=2)  # warm-up: topics, group, caches
        fresh = await freshness(intake_url, reporting_url, rate=rate, seconds=seconds)
        expo = await exposition(stack.database_url, reporting_url, combos=combos, requests=200)
        return {"seconds": seconds, "rate": rate, "combos": combos, "fresh": fresh, "expo": expo,
                "load": os.getloadavg()}


def report(r: dict) -> str:
    ok = lambda cond: "met" if cond else "MISSED"  # noqa: E731
    f, e = r["fresh"], r["expo"]
    return "\n".join([
        header("reporting: KPI freshness at 1,000 feedback/s and /metrics with 5,000 label combinations"),
        "",
        "Real Tansu broker and embedded PostgreSQL; intake and reporting each one uvicorn worker "
        "(reporting's snapshot refresh 0.5 s, the default); load generator and poller on the same machine.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| offered / accepted | {f['offered_rate']:,.0f} feedback/s for {r['seconds']:g} s / {f['accepted']:,} "
        f"accepted | 1,000/s | |",
        f"| accepted -> reflected in `/metrics`: p50 / p99 / max | {f['p50_s']:.2f} / {f['p99_s']:.2f} / "
        f"{f['max_s']:.2f} s ({f['reflected']:,} of {f['accepted']:,}) | p99 <= 2 s | {ok(f['p99_s'] <= 2)} |",
        f"| `/metrics` during that load: p50 / p99 | {f['scrape_p50_ms']:.1f} / {f['scrape_p99_ms']:.1f} ms | | |",
        f"| `/metrics` with {r['combos']:,} combinations x 3 place counters ({e['series']:,} cx_ lines, "
        f"{e['bytes'] / 1024:,.0f} KiB): p50 / p99 / max | {e['p50_ms']:.1f} / {e['p99_ms']:.1f} / "
        f"{e['max_ms']:.1f} ms | < 100 ms | {ok(e['p99_ms'] < 100)} |",
        f"| snapshot read + build (background, every 0.5 s) at that size | {e['snapshot_read_ms']:.0f} ms | | |",
        "",
        f"Intake batch statuses: {f['statuses']}; load average after the run: "
        f"{', '.join(f'{x:.2f}' for x in r['load'])}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.reporting.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="length of the paced run")
    parser.add_argument("--rate", type=float, default=1000.0, help="feedback per second offered to intake")
    parser.add_argument("--combos", type=int, default=5000, help="label combinations for the /metrics run")
    parser.add_argument("--write", action="store_true", help="store the Markdown in bench/reporting/RESULTS.md")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.seconds, args.rate, args.combos))
    text = report(result)
    print(text)
    if args.write:
        (HERE / "RESULTS.md").write_text("# Reporting benchmark\n\n" + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
