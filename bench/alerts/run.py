"""Alerts benchmark, the whole system: intake's 2xx -> alert stored -> email accepted.

Starts its own Tansu broker, embedded PostgreSQL, the dev SMTP sink (aiosmtpd, its own
process, stamping each mail with the moment DATA arrived) and all four services as separate processes (``python -m services.<name>``,
as deployed), then posts feedback to intake's ``POST /v1/feedback`` at a fixed rate
(mixed channels, ~10 % negative; 100 keep-alive connections, each request sent at its
scheduled time) and measures, per negative feedback:

- to alert stored: from intake's 202 reaching the client to the moment this process first
  sees the committed alert row (polled every 20 ms, so an upper bound);
- to email accepted: from the same 202 to the SMTP sink answering 250 to the alert's mail
  (matched by Message-ID).

CPU seconds of every component (each service, PostgreSQL, Tansu, the SMTP sink, this load
generator) are reported: on a 2-core machine they say how much headroom the figures had.

    python -m bench.alerts.run [--rate 1000] [--seconds 60] [--alerts-replicas 1] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import sys
import time
from pathlib import Path

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import consumers_assigned, cpu_seconds, header, percentile, work_dir  # noqa: E402
from bench.intake.load import build_request  # noqa: E402
from keymoment.devstack.smtp_sink import Mailbox  # noqa: E402
from keymoment.devstack.stack import KAFKA, SMTP, ServiceSpec, Stack  # noqa: E402
from services.alerts.metrics import BATCH_PHASES  # noqa: E402

HERE = Path(__file__).resolve().parent
API_KEY = "km_dev_bench-alerts-not-a-secret"
SERVICES = ("intake", "survey", "alerts", "reporting")
PARTITIONS = 3  # KAFKA_TOPIC_PARTITIONS's default, which the stack leaves as it is
CONNECTIONS = 100

POSITIVE = [
    ("zh", "服务很好，工作人员非常热情，谢谢！"),
    ("zh", "办理很快，环境干净。"),
    ("en", "Quick check-in and friendly staff, thank you."),
    ("en", "Great food, we will come back."),
    ("zh", "Overall 不错, staff 很 helpful."),
]
NEGATIVE = [
    ("zh", "排队等了四十分钟，工作人员态度很差。"),
    ("zh", "行李丢了三天没人管，再不处理我就打12315投诉！"),
    ("en", "The agent was rude and hung up on me. Terrible."),
    ("en", "My order was wrong and cold, I want a refund."),
]
CHANNELS = [("kiosk", 35), ("web", 20), ("email", 15), ("phone", 10), ("suggestion_box", 10), ("survey", 10)]


def make_feedback(rng: random.Random, negative: bool) -> dict:
    """The JSON body of one ``POST /v1/feedback``."""
    channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
    body: dict = {
        "channel": channel, "location": f"store-{rng.randrange(5000)}",
        "touchpoint": rng.choice(["checkout", "entrance", "delivery", "service desk"]),
    }
    if rng.random() < 0.5:
        body["customer"] = {"id": f"c-{rng.randrange(1_000_000)}", "email": "customer@example.cn"}
    lang, text = rng.choice(NEGATIVE if negative else POSITIVE)
    if channel == "kiosk":
        body["rating"] = {"scale": "mot", "value": rng.choice([-3, -2, -1]) if negative else rng.choice([1, 2, 3])}
    else:
        body["text"] = text
        body["language"] = "zh-CN" if lang == "zh" else "en"
    if channel in ("survey", "web"):
        body["rating"] = {"scale": "csat", "value": rng.choice([1, 2]) if negative else rng.choice([4, 5])}
    body.update({
        "email": {"email": {"subject": "feedback"}},
        "phone": {"phone": {"direction": "inbound"}},
        "survey": {"survey": {"survey_id": "post-visit"}},
    }.get(channel, {}))
    return body


def accepted_by_message_id(mailbox: Mailbox) -> dict[str, float]:
    """When the SMTP sink accepted each mail (DATA arrived), by Message-ID."""
    accepted = {}
    for mail in mailbox.messages():
        match = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", mail.raw)
        if match:
            accepted[match.group(1).decode()] = mail.accepted_at
    return accepted


def _postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on the machine (the server and its backends)."""
    total = 0.0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"postgres"):
                total += cpu_seconds(int(pid))
        except OSError:
            continue
    return total


async def _offer(port: int, requests: list[bytes], rate: int, accepted: dict[str, float],
                 statuses: dict[int, int], lateness: list[float]) -> float:
    """Send ``requests`` at ``rate``/s over keep-alive connections; record when each 202 came back."""
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    cursor = iter(range(len(requests)))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for slot in cursor:
                due = t0 + slot / rate
                if (wait := due - loop.time()) > 0:
                    await asyncio.sleep(wait)
                writer.write(requests[slot])
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line[15:]) for line in head.split(b"\r\n") if line[:15].lower() == b"content-length:")
                body = await reader.readexactly(length)
                now = time.time()
                lateness.append(loop.time() - due)
                status = int(head[9:12])
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    accepted[json.loads(body)["id"]] = now
        finally:
            writer.close()

    await asyncio.gather(*(connection() for _ in range(CONNECTIONS)))
    return loop.time() - t0


async def run(args: argparse.Namespace) -> str:
    env = {"PYTHONPATH": str(HERE.parents[1]), "KEYMOMENT_ENV": "dev", "LOG_LEVEL": "WARNING",
           "INTAKE_DEV_API_KEY": API_KEY}
    # more alerts replicas (--alerts-replicas) share its consumer group's partitions, as in production
    replicas = [f"alerts-{i}" for i in range(2, args.alerts_replicas + 1)]
    services = [*SERVICES, *(ServiceSpec(name, ServiceSpec.service("alerts").args) for name in replicas)]
    names = [*SERVICES, *replicas]
    with work_dir("alerts") as work, Stack(work, smtp=True, services=services, database="keymoment", env=env) as stack:
        dsn = stack.database_url
        ports = {name: stack.port(name) for name in names}
        # The load starts once every consumer group fetches from all its partitions: joining a group
        # takes Tansu several seconds, and events offered before would measure that, not the pipeline.
        consumers = [f"{stack.url(name)}/metrics" for name in names if name != "intake"]
        joined = await consumers_assigned(consumers, partitions=PARTITIONS)

        rng = random.Random(5)
        total = args.rate * args.seconds
        requests = [
            build_request("127.0.0.1", "/v1/feedback",
                          json.dumps(make_feedback(rng, rng.random() < args.negative), ensure_ascii=False).encode(),
                          {"X-API-Key": API_KEY})
            for _ in range(total)
        ]
        conn = await asyncpg.connect(dsn)
        poll_conn = await asyncpg.connect(dsn)
        seen: dict[str, float] = {}
        stop_poll = asyncio.Event()

        async def poll() -> None:
            while not stop_poll.is_set():
                rows = await poll_conn.fetch(
                    "SELECT feedback_id FROM alerts.alerts WHERE raised_at >= now() - interval '10 seconds'")
                now = time.time()
                for r in rows:
                    seen.setdefault(r["feedback_id"], now)
                await asyncio.sleep(0.02)

        poller = asyncio.create_task(poll())

        def cpu_now() -> dict[str, float]:
            out = {name: cpu_seconds(stack.process(name).pid) for name in SERVICES}
            out["alerts"] += sum(cpu_seconds(stack.process(name).pid) for name in replicas)
            out |= {"postgres": _postgres_cpu(), "tansu": cpu_seconds(stack.process(KAFKA).pid),
                    "smtp sink": cpu_seconds(stack.process(SMTP).pid), "load generator": cpu_seconds(os.getpid())}
            return out

        cpu0, started = cpu_now(), time.monotonic()
        accepted: dict[str, float] = {}
        statuses: dict[int, int] = {}
        lateness: list[float] = []
        offer_seconds = await _offer(ports["intake"], requests, args.rate, accepted, statuses, lateness)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # drain: every feedback scored and every mail out
            processed = await conn.fetchval("SELECT count(*) FROM alerts.processed_events")
            pending = await conn.fetchval(
                "SELECT count(*) FROM alerts.mail_queue WHERE state IN ('pending', 'sending')")
            if processed >= len(accepted) and pending == 0:
                break
            await asyncio.sleep(0.2)
        wall = time.monotonic() - started
        cpu = {name: v - cpu0[name] for name, v in cpu_now().items()}
        stop_poll.set()
        await poller
        await poll_conn.close()
        async with httpx.AsyncClient() as client:
            metrics = [(await client.get(f"http://127.0.0.1:{ports[name]}/metrics")).text
                       for name in ("alerts", *replicas)]
        alerts = await conn.fetch("SELECT feedback_id, raised_at FROM alerts.alerts")
        mails = await conn.fetch(  # one mail per recipient: an alert is mailed when its last one is (max below)
            """SELECT a.feedback_id, m.message_id FROM alerts.notifications n
               JOIN alerts.alerts a USING (alert_id)
               JOIN alerts.mail_queue m ON m.purpose = 'alert_notification' AND m.ref = n.notification_id
               WHERE n.kind = 'raised'""")
        grouped = await conn.fetchval("SELECT count(*) FROM alerts.alert_feedback WHERE role = 'grouped'")
        processed = await conn.fetchval("SELECT count(*) FROM alerts.processed_events")
        await conn.close()
        sink_accepted = accepted_by_message_id(stack.mailbox)

    start_cut = min(accepted.values()) + args.warmup if accepted else 0
    stored, handler, mailed = [], [], []
    for row in alerts:
        at = accepted.get(row["feedback_id"])
        if at is None or at < start_cut:
            continue
        if row["feedback_id"] in seen:
            stored.append(seen[row["feedback_id"]] - at)
        handler.append(row["raised_at"].timestamp() - at)
    last_mail: dict[str, float] = {}
    for row in mails:
        if row["message_id"] in sink_accepted:
            at = sink_accepted[row["message_id"]]
            last_mail[row["feedback_id"]] = max(at, last_mail.get(row["feedback_id"], at))
    for feedback_id, mailed_at in last_mail.items():
        at = accepted.get(feedback_id)
        if at is not None and at >= start_cut:
            mailed.append(mailed_at - at)
    def summed(series: str, labels: str = 'group="alerts"') -> float:  # over the alerts replicas
        found = [re.search(series + r"\{" + re.escape(labels) + r"\} (\S+)", text) for text in metrics]
        return sum(float(m.group(1)) for m in found if m) if any(found) else float("nan")

    batches = summed("keymoment_consumer_batch_seconds_count")
    batch_sum = summed("keymoment_consumer_batch_seconds_sum")

    phase_sums = {name: summed("keymoment_alerts_feedback_batch_phase_seconds_sum", f'phase="{name}"')
                  for name in BATCH_PHASES}
    phases = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in phase_sums.items())

    def ms(v: float) -> str:
        return f"{v * 1000:,.0f} ms"

    def row_of(label: str, values: list[float], target: str) -> str:
        p99 = ms(percentile(values, 99))
        return (f"| {label} | {len(values):,} | {ms(percentile(values, 50))} | {ms(percentile(values, 95))} | "
                f"{'**' + p99 + '**' if target else p99} | {ms(max(values, default=float('nan')))} | {target} |")

    busy = sum(cpu.values())
    lines = [
        header("Alerts, whole system: intake's 202 -> alert stored -> email accepted"),
        f"Offered load: {total:,} `POST /v1/feedback` at {args.rate:,}/s for {args.seconds}s over {CONNECTIONS} "
        f"keep-alive connections (sent in {offer_seconds:.1f}s; statuses {statuses}; request sent at most "
        f"{max(lateness, default=0) * 1000:,.0f} ms after its schedule, 202 p99 {ms(percentile(lateness, 99))} after it), "
        f"~{args.negative:.0%} negative, channels " + ", ".join(f"{c} {w}%" for c, w in CHANNELS) + ".",
        "",
        "Everything on this machine: Tansu, PostgreSQL 18, intake, survey, alerts, reporting, the SMTP sink "
        f"and the load generator. The load started once every consumer group fetched from all its partitions "
        f"({joined:.1f}s after the stack was up).",
        "",
        f"Alerts processed {processed:,} events; raised {len(alerts):,} alerts ({grouped:,} more negative feedback "
        f"grouped into open ones); {sum(1 for m in mails if m['message_id'] in sink_accepted):,} of {len(mails):,} "
        f"'raised' mails accepted. Alerts consumer{'s' if replicas else ''} ({1 + len(replicas)} "
        f"replica{'s' if replicas else ''}): {batches:,.0f} batches, busy {batch_sum:.1f}s of {wall:.1f}s"
        f"{' (summed)' if replicas else ''}; of it in the feedback handler: {phases} (the rest: decoding, "
        "dedupe, commit).",
        "",
        f"CPU seconds over the {wall:.1f}s run (2 cores = {2 * wall:.0f} s available; used {busy:.1f} s, "
        f"{busy / (2 * wall):.0%}): " + ", ".join(f"{k} {v:.1f}" for k, v in cpu.items()) + ".",
        "",
        f"Latency of negative feedback accepted after the first {args.warmup:g}s:",
        "",
        "| from intake's 202 to | n | p50 | p95 | p99 | max | target p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        row_of("alert row committed and seen (20 ms polling)", stored, "250 ms"),
        row_of("alert handler's clock (`raised_at`, before the commit)", handler, ""),
        row_of("email accepted by the SMTP server (250 to DATA)", mailed, "1,000 ms"),
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="feedback per second")
    parser.add_argument("--seconds", type=int, default=60, help="how long to offer the load")
    parser.add_argument("--negative", type=float, default=0.10, help="share of negative feedback")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds excluded from the latency figures")
    parser.add_argument("--alerts-replicas", type=int, default=1,
                        help="alerts processes sharing its consumer group (the production overlays run several)")
    parser.add_argument("--write", action="store_true", help="add the Markdown to bench/alerts/RESULTS.md")
    args = parser.parse_args(argv)
    text = asyncio.run(run(args))
    print(text)
    if args.write:
        results = HERE / "RESULTS.md"
        results.write_text(results.read_text(encoding="utf-8").rstrip() + "\n\n" + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
