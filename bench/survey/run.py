"""Survey benchmark (issue 15, Speed). Starts its own Tansu broker, embedded PostgreSQL, the
dev SMTP sink and survey (``python -m services.survey``, one uvicorn worker, its mail sender
off), then measures:

(a) bulk: 10,000 invitations (10,000 customers) in one ``POST /v1/invitations/bulk``
    (NDJSON): accepted — contact rules applied, invitations and their mails stored — in
    <= 10 s;
(b) the shared mail queue: two more survey processes start with their senders on (the queue
    holds (a)'s 10,000 mails) and send to the SMTP sink: >= 100 mails/s from the sink's
    first to its last acceptance, and no mail twice (10,000 distinct Message-IDs);
(c) the public survey page at a paced 200 requests/s for ``--seconds`` each (open loop), GET
    ``/s/{id}`` and POST ``/s/{id}/responses`` (JSON, a new submission each): p99 <= 50 ms.

    python -m bench.survey.run [--rows 10000] [--seconds 20] [--write]

The rate limits of the public pages are raised for (c): every request comes from one client
address. Figures with date, machine and load in bench/survey/RESULTS.md (``--write``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx

from bench.common import cpu_seconds, header, percentile, work_dir
from bench.intake.load import build_request, open_loop
from keymoment.devstack.stack import External, ServiceSpec, Stack
from services.survey.demo import DEMO_SURVEY

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
ADMIN_TOKEN = "kmadmin_bench-not-secret"
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SURVEY = {**DEMO_SURVEY, "id": "bench", "access": "public", "triggers": []}


def _env(**extra: str) -> dict[str, str]:
    return {"PYTHONPATH": str(ROOT), "KEYMOMENT_ENV": "dev", "ADMIN_TOKEN": ADMIN_TOKEN, "LOG_LEVEL": "WARNING",
            "LINK_SIGNING_KEY": "bench-link-signing-key", "SURVEY_QUIET_HOURS": "",
            "SURVEY_CLIENT_REQUESTS_PER_MINUTE": "100000000", "SURVEY_PUBLIC_SUBMISSIONS_PER_MINUTE": "100000000",
            **extra}


def _sender(name: str) -> ServiceSpec:
    return ServiceSpec(name, (sys.executable, "-m", "services.survey"), env={"MAIL_SENDER_ENABLED": "true"})


async def bulk(url: str, rows: int) -> dict:
    body = "\n".join(json.dumps({"customer": {"id": f"C-{i}", "email": f"customer{i:05d}@example.cn", "name": "客户"},
                                 "key": f"bench-{i}", "context": {"order_id": f"SO-{i}"}}, ensure_ascii=False)
                     for i in range(rows)).encode()
    async with httpx.AsyncClient(base_url=url, timeout=120, headers=ADMIN) as http:
        started = time.perf_counter()
        response = await http.post("/v1/invitations/bulk", params={"survey_id": SURVEY["id"]}, content=body,
                                   headers={"Content-Type": "application/x-ndjson"})
        elapsed = time.perf_counter() - started
    assert response.status_code == 202, response.text[:500]
    report = response.json()
    return {"rows": rows, "seconds": elapsed, "queued": report["queued"], "skipped": report["skipped"],
            "invalid": report["invalid"], "bytes": len(body)}


def sending(work: Path, stack: Stack, expected: int) -> dict:
    """Two sender replicas against the full queue; the sink's acceptance times."""
    external = External(kafka=stack.bootstrap_servers, database_url=stack.database_url, smtp=stack.smtp_address)
    started = time.monotonic()
    with Stack(work / "senders", kafka=False, postgres=False, services=(_sender("sender-1"), _sender("sender-2")),
               external=external, env=_env()):
        deadline = time.monotonic() + 600
        while len(stack.mailbox) < expected and time.monotonic() < deadline:
            time.sleep(0.5)
        time.sleep(3.0)  # a duplicate would show up now
    mails = stack.mailbox.messages()
    ids = Counter(re.search(rb"^Message-ID: (\S+)", m.raw, re.M | re.I).group(1) for m in mails)
    times = sorted(m.accepted_at for m in mails)
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"mails": len(mails), "distinct": len(ids), "duplicates": sum(n - 1 for n in ids.values() if n > 1),
            "rate": (len(times) - 1) / span if span else float("nan"), "span": span,
            "wall": time.monotonic() - started}


def _requests(method: str, n: int) -> list[bytes]:
    if method == "GET":
        return [build_request("127.0.0.1", f"/s/{SURVEY['id']}", b"", {"Accept-Language": "zh-CN"}, method="GET")]
    return [build_request("127.0.0.1", f"/s/{SURVEY['id']}/responses", json.dumps({
        "answers": {"feeling": 2, "effort": 6, "reason": "staff", "comment": "店员很耐心，结账很快"},
        "submission_id": uuid.uuid4().hex, "language": "zh-CN"}, ensure_ascii=False).encode(), {})
        for _ in range(n)]


async def paced(port: int, pid: int, *, method: str, rate: float, seconds: float) -> dict:
    """Open loop (``bench.intake.load``): request i is due at start + i / rate whatever the answers
    before it; its latency counts from then. And the service's CPU per request."""
    requests = _requests(method, int(rate * seconds))
    before = cpu_seconds(pid)
    result = await open_loop("127.0.0.1", port, requests, rate=rate, seconds=seconds, connections=64)
    cpu_ms = (cpu_seconds(pid) - before) / max(result.requests, 1) * 1000
    ms = [x * 1000 for x in result.latencies]
    return {"method": method, "requests": result.requests, "statuses": result.statuses,
            "p50": statistics.median(ms), "p99": percentile(ms, 99), "max": max(ms), "cpu_ms": cpu_ms,
            "rate": result.rate}


async def measure(rows: int, seconds: float, rate: float) -> dict:
    env = _env(MAIL_SENDER_ENABLED="false")
    with work_dir("survey") as work, Stack(work, smtp=True, services=("survey",), database="bench", env=env) as stack:
        url, port, pid = stack.url("survey"), stack.port("survey"), stack.process("survey").pid
        async with httpx.AsyncClient(base_url=url, timeout=30, headers=ADMIN) as http:
            assert (await http.post("/v1/surveys", json=SURVEY)).status_code == 201
        accepted = await bulk(url, rows)
        load_after_bulk = os.getloadavg()
        sent = await asyncio.to_thread(sending, work, stack, accepted["queued"])
        await paced(port, pid, method="GET", rate=rate, seconds=2)  # warm-up
        await paced(port, pid, method="POST", rate=rate, seconds=2)
        page = await paced(port, pid, method="GET", rate=rate, seconds=seconds)
        answer = await paced(port, pid, method="POST", rate=rate, seconds=seconds)
        return {"bulk": accepted, "mail": sent, "get": page, "post": answer, "rate": rate, "seconds": seconds,
                "load_after_bulk": load_after_bulk, "load": os.getloadavg()}


def report(r: dict) -> str:
    ok = lambda cond: "met" if cond else "MISSED"  # noqa: E731
    b, m, g, p = r["bulk"], r["mail"], r["get"], r["post"]
    load = ", ".join(f"{x:.2f}" for x in r["load"])
    return "\n".join([
        header("survey: bulk invitations, the shared mail queue, the public survey page"),
        "Real Tansu broker, embedded PostgreSQL and the dev SMTP sink (an .eml file per mail); survey one uvicorn "
        "worker; load generator on the same machine.",
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| bulk: {b['rows']:,} invitations (NDJSON, {b['bytes'] / 1e6:.1f} MB) accepted: rules applied, rows and "
        f"mails stored | {b['seconds']:.1f} s ({b['queued']:,} queued, {b['skipped']} skipped, {b['invalid']} invalid)"
        f" | <= 10 s | {ok(b['seconds'] <= 10)} |",
        f"| mail queue, 2 sender replicas -> SMTP sink | {m['rate']:,.0f} mails/s ({m['mails']:,} mails over "
        f"{m['span']:.1f} s) | >= 100 mails/s | {ok(m['rate'] >= 100)} |",
        f"| ... sent twice | {m['duplicates']} ({m['distinct']:,} distinct Message-IDs) | 0 | "
        f"{ok(m['duplicates'] == 0 and m['mails'] == b['queued'])} |",
        f"| `GET /s/{{id}}` at {r['rate']:.0f}/s for {r['seconds']:g} s: p50 / p99 / max | {g['p50']:.1f} / "
        f"{g['p99']:.1f} / {g['max']:.1f} ms | p99 <= 50 ms | {ok(g['p99'] <= 50)} |",
        f"| `POST /s/{{id}}/responses` at {r['rate']:.0f}/s for {r['seconds']:g} s: p50 / p99 / max | "
        f"{p['p50']:.1f} / {p['p99']:.1f} / {p['max']:.1f} ms | p99 <= 50 ms | {ok(p['p99'] <= 50)} |",
        "",
        f"Latencies are from the moment each request was due (open loop, `bench/intake/load.py`: the generator's "
        f"own lag counts). Survey's CPU per request: GET {g['cpu_ms']:.2f} ms, POST {p['cpu_ms']:.2f} ms (the "
        f"POST also writes the response and its events to the outbox, which the relay publishes). Statuses: GET "
        f"{g['statuses']}, POST {p['statuses']}. Load average after the bulk upload "
        f"{', '.join(f'{x:.2f}' for x in r['load_after_bulk'])}, after the run {load}.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.survey.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="invitations in the bulk upload")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each paced page run")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second of the paced runs")
    parser.add_argument("--write", action="store_true", help="store the Markdown in bench/survey/RESULTS.md")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.rows, args.seconds, args.rate))
    text = report(result)
    print(text)
    if args.write:
        note = ("# Survey benchmark\n\nFigures from a shared 2-core VM while other engineers' tests ran (see the load "
                "averages): the integrator re-runs `python -m bench.survey.run --write` on a quiet machine before "
                "they are quoted.\n\n")
        (HERE / "RESULTS.md").write_text(note + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
