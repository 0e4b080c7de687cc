"""Alerts benchmark: sustained feedback load -> alert stored -> email accepted.

Starts its own Tansu broker, embedded PostgreSQL, an SMTP sink (aiosmtpd, in
this process) and the alerts service as a separate process (``python -m
services.alerts``, exactly as in production), then produces
``feedback.received.v1`` at a fixed rate (mixed channels, ~10 % negative)
and measures, per feedback:

- to alert stored: from the produce acknowledgement (``acks=all``) of the
  feedback to the moment this process first sees the committed alert row
  (polled every 20 ms, so an upper bound) — the intake API is not in the
  loop; its 2xx comes after the same produce ack, so this is the same clock
  start minus intake's own handling;
- to email accepted: from the same produce ack to the SMTP sink answering
  250 to the alert's mail (matched by Message-ID).

    python -m bench.alerts.run [--rate 1000] [--seconds 60]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.common import header, percentile, wait_http  # noqa: E402
from keymoment.devstack.broker import TansuBroker  # noqa: E402
from keymoment.devstack.ports import free_port  # noqa: E402
from keymoment.devstack.postgres import EmbeddedPostgres  # noqa: E402
from shared.contracts import FeedbackReceived  # noqa: E402
from shared.events import FEEDBACK_RECEIVED, Envelope  # noqa: E402
from shared.kafka import ensure_topics  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "bench."
TICK = 0.01

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


def make_feedback(rng: random.Random, negative: bool) -> FeedbackReceived:
    channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
    location = f"store-{rng.randrange(5000)}"
    touchpoint = rng.choice(["checkout", "entrance", "delivery", "service desk"])
    customer = {"id": f"c-{rng.randrange(1_000_000)}", "email": "customer@example.cn"} if rng.random() < 0.5 else None
    lang, text = rng.choice(NEGATIVE if negative else POSITIVE)
    rating = None
    if channel == "kiosk":
        text = None
        rating = {"scale": "mot", "value": rng.choice([-3, -2, -1]) if negative else rng.choice([1, 2, 3])}
    elif channel in ("survey", "web"):
        rating = {"scale": "csat", "value": rng.choice([1, 2]) if negative else rng.choice([4, 5])}
    details = {
        "email": {"email": {"subject": "feedback"}},
        "phone": {"phone": {"direction": "inbound"}},
        "survey": {"survey": {"survey_id": "post-visit"}},
    }.get(channel, {})
    return FeedbackReceived(
        id=str(uuid.uuid4()), received_at=datetime.now(UTC), source="bench", channel=channel, text=text,
        rating=rating, location=location, touchpoint=touchpoint, customer=customer,
        language="zh-CN" if lang == "zh" else "en", **details,
    )


class Sink:
    """SMTP sink recording when each Message-ID was accepted."""

    def __init__(self) -> None:
        self.accepted: dict[str, float] = {}
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        now = time.time()
        match = re.search(rb"(?im)^Message-ID:\s*(<[^>]+>)", envelope.original_content or envelope.content)
        if match:
            with self.lock:
                self.accepted[match.group(1).decode()] = now
        return "250 OK"


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


async def run(args: argparse.Namespace) -> str:
    work = Path(tempfile.mkdtemp(prefix="bench-alerts-"))
    broker = TansuBroker(free_port(), work / "broker.log")
    pg = EmbeddedPostgres(work / "pg", free_port(), work / "postgres.log")
    sink = Sink()
    smtp_port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=smtp_port)
    procs: list[subprocess.Popen] = []
    broker.start()
    pg.start()
    try:
        pg.create_database("keymoment")
        controller.start()
        dsn = pg.dsn("keymoment")
        env = {
            **os.environ, "KEYMOMENT_ENV": "dev", "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap_servers,
            "KAFKA_TOPIC_PREFIX": PREFIX, "DATABASE_URL": dsn, "SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(smtp_port),
            "LOG_LEVEL": "WARNING", "PUBLIC_BASE_URL": "http://127.0.0.1:8003",
            **dict(kv.split("=", 1) for kv in args.env),
        }
        topic = PREFIX + FEEDBACK_RECEIVED.topic
        await ensure_topics(broker.bootstrap_servers, [topic], partitions=3)
        for replica in range(args.replicas):
            port = free_port()
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "services.alerts"], cwd=ROOT, env={**env, "PORT": str(port)},
                stdout=open(work / f"alerts-{replica}.log", "wb"), stderr=subprocess.STDOUT))
            await wait_http(f"http://127.0.0.1:{port}/readyz", procs[-1])
        await asyncio.sleep(args.replicas * 2)  # let the consumer group settle before offering load

        rng = random.Random(5)
        total = int(args.rate * args.seconds)
        planned: list[tuple[str, bytes | None, list, bytes]] = []
        for _ in range(total):
            fb = make_feedback(rng, rng.random() < args.negative)
            env_ = Envelope.new(FEEDBACK_RECEIVED, fb, source="/bench", key=fb.partition_key(), id=fb.id)
            planned.append((fb.id, env_.key_bytes(), env_.headers(), env_.value()))

        conn = await asyncpg.connect(dsn)
        poll_conn = await asyncpg.connect(dsn)
        acks: dict[str, float] = {}
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
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all", linger_ms=5,
                                    max_batch_size=1_048_576, enable_idempotence=False)
        await producer.start()
        cpu0, started = sum(cpu_seconds(p.pid) for p in procs), time.monotonic()
        loop = asyncio.get_running_loop()
        t0, sent, behind_max = loop.time(), 0, 0
        futures = []
        while sent < total:
            due = min(total, int((loop.time() - t0) * args.rate) + 1)
            behind_max = max(behind_max, due - sent)
            for fid, key, headers, value in planned[sent:due]:
                fut = await producer.send(topic, value=value, key=key, headers=headers)
                fut.add_done_callback(lambda f, fid=fid: acks.setdefault(fid, time.time()))
                futures.append(fut)
            sent = due
            await asyncio.sleep(max(0.0, t0 + sent / args.rate - loop.time()))
        await asyncio.gather(*futures)
        produce_seconds = loop.time() - t0
        await producer.stop()

        # drain: every event processed and every mail out
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            processed = await conn.fetchval("SELECT count(*) FROM alerts.processed_events")
            pending = await conn.fetchval(
                "SELECT count(*) FROM alerts.notifications WHERE status IN ('pending', 'sending')")
            if processed >= total and pending == 0:
                break
            await asyncio.sleep(0.2)
        drain_seconds = time.monotonic() - started - produce_seconds
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu0
        stop_poll.set()
        await poller
        await poll_conn.close()
        alerts = await conn.fetch("SELECT alert_id, feedback_id, raised_at FROM alerts.alerts")
        mails = await conn.fetch(
            """SELECT a.feedback_id, n.message_id, n.status FROM alerts.notifications n
               JOIN alerts.alerts a USING (alert_id) WHERE n.kind = 'raised'""")
        counts = dict(await conn.fetch(
            "SELECT role, count(*) FROM alert_feedback GROUP BY role".replace("alert_feedback", "alerts.alert_feedback")))
        processed = await conn.fetchval("SELECT count(*) FROM alerts.processed_events")
        await conn.close()
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        controller.stop()
        pg.stop()
        broker.stop()

    warm = args.warmup
    start_cut = min(acks.values()) + warm if acks else 0
    stored, handler, mailed = [], [], []
    for row in alerts:
        ack = acks.get(row["feedback_id"])
        if ack is None or ack < start_cut:
            continue
        if row["feedback_id"] in seen:
            stored.append(seen[row["feedback_id"]] - ack)
        handler.append(row["raised_at"].timestamp() - ack)
    for row in mails:
        ack = acks.get(row["feedback_id"])
        if ack is None or ack < start_cut or row["message_id"] not in sink.accepted:
            continue
        mailed.append(sink.accepted[row["message_id"]] - ack)

    def ms(v: float) -> str:
        return f"{v * 1000:,.0f} ms"

    lines = [
        header("Alerts: feedback -> alert stored -> email accepted"),
        f"Offered load: {total:,} feedback at {args.rate:,}/s for {args.seconds}s (achieved {total / produce_seconds:,.0f}/s, "
        f"producer at most {behind_max} behind schedule), ~{args.negative:.0%} negative, channels "
        + ", ".join(f"{c} {w}%" for c, w in CHANNELS) + "; everything on this machine: Tansu, PostgreSQL 18, "
        "the alerts process, the SMTP sink and the load generator.",
        "",
        f"Processed {processed:,} events; alerts raised {len(alerts):,}; negative feedback grouped into open alerts "
        f"{counts.get('grouped', 0):,}; 'raised' mails accepted {sum(1 for m in mails if m['message_id'] in sink.accepted):,} "
        f"of {len(mails):,}. Drained {drain_seconds:.1f}s after the last produce ack. Alerts CPU ({args.replicas} process(es)"
        f"{', ' + ' '.join(args.env) if args.env else ''}) "
        f"{cpu:.1f}s over {produce_seconds + drain_seconds:.1f}s ({cpu / (produce_seconds + drain_seconds):.0%} of one core).",
        "",
        f"Latency after the first {warm}s (clock starts at the produce ack; intake's HTTP handling not included):",
        "",
        "| from produce ack to | n | p50 | p95 | p99 | max | target p99 |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| alert row committed and seen (20 ms polling) | {len(stored):,} | {ms(percentile(stored, 50))} | {ms(percentile(stored, 95))} | "
        f"**{ms(percentile(stored, 99))}** | {ms(max(stored, default=float('nan')))} | 250 ms |",
        f"| alert handler time (`raised_at`, before commit) | {len(handler):,} | {ms(percentile(handler, 50))} | "
        f"{ms(percentile(handler, 95))} | {ms(percentile(handler, 99))} | {ms(max(handler, default=float('nan')))} | |",
        f"| email accepted by SMTP (250 to DATA) | {len(mailed):,} | {ms(percentile(mailed, 50))} | {ms(percentile(mailed, 95))} | "
        f"**{ms(percentile(mailed, 99))}** | {ms(max(mailed, default=float('nan')))} | 1,000 ms |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alerts.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="feedback per second")
    parser.add_argument("--seconds", type=int, default=60, help="how long to offer the load")
    parser.add_argument("--negative", type=float, default=0.10, help="share of negative feedback")
    parser.add_argument("--replicas", type=int, default=1, help="alerts processes in the consumer group")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="extra setting for the alerts processes, e.g. ALERTS_CONSUMER_MAX_RECORDS=100")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds excluded from the latency figures")
    args = parser.parse_args(argv)
    print(asyncio.run(run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
