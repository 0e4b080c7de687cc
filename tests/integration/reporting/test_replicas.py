"""Two reporting replicas in one consumer group take their row locks in one order: 3,000 feedback with
their scores and alerts counted exactly, and not one deadlock (PostgreSQL's own count)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from datetime import timedelta

import asyncpg
import pytest

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from tests.integration.reporting.support import (
    T0, alert_raised, alert_updated, new_id, publish, publisher, received, scored, scrape, total,
)
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

N = 3_000


async def _deadlocks(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
    finally:
        await conn.close()


def _stream(rng: random.Random) -> tuple[list, int, int]:
    """Received and scored events of N feedback on few places (hot counter rows), alerts for negatives."""
    events, negatives, alerts = [], 0, 0
    for i in range(N):
        fid = new_id()
        where = {"channel": rng.choice(["kiosk", "web", "email"]), "location": f"store-{rng.randrange(6)}",
                 "touchpoint": rng.choice(["checkout", "delivery", "billing", "returns"])}
        mot = rng.randrange(-3, 4)
        events += [received(fid, rating=("mot", mot), **where), scored(fid, mot, **where)]
        negatives += mot < 0
        if mot < 0 and i % 3 == 0:
            aid = f"a-{fid}"
            alerts += 1
            events += [alert_raised(aid, severity=mot, location=where["location"]),
                       alert_updated(aid, "acknowledged", severity=mot, at=T0 + timedelta(minutes=5),
                                     acknowledged_at=T0 + timedelta(minutes=5), previous="open")]
    rng.shuffle(events)  # the topics interleave in any order
    return events, negatives, alerts


async def test_two_replicas_count_everything_once_without_deadlocks(service_env, kafka_bootstrap, database_url):
    group = f"reporting-{uuid.uuid4().hex[:8]}"
    s = ReportingSettings(**{**service_env, "kafka_consumer_group": group}, reporting_refresh_seconds=0.2)
    events, negatives, alerts = _stream(random.Random(13))
    deadlocks_before = await _deadlocks(database_url)
    async with contextlib.AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(running(create_app(s))) for _ in range(2)]
        consumers = [r.runtime.consumers[0] for r in replicas]
        await wait_until(lambda: all(c.status.assigned for c in consumers), timeout=60, what="both replicas assigned")
        async with publisher(kafka_bootstrap) as pub:
            for start in range(0, len(events), 500):
                await publish(pub, s, events[start:start + 500])
                await asyncio.sleep(0.05)

        async def counted() -> bool:
            m = await scrape(replicas[0].url)
            return (total(m, "cx_feedback_total") == N and total(m, "cx_mot_scored_total") == N
                    and total(m, "cx_alert_ack_seconds_count") == alerts)
        await wait_until(counted, timeout=180, interval=0.5, what=f"{N} feedback, scores and {alerts} alerts counted")
        m = await scrape(replicas[1].url)  # the other replica exposes the same totals
        assert all(len(c.status.assigned) > 0 for c in consumers)  # both took part to the end
        assert sum(c.status.processed for c in consumers) >= len(events)
        retries = sum(r.runtime.consumer_metrics.retries.labels(group, "transient")._value.get() for r in replicas)
    deadlocks = await _deadlocks(database_url) - deadlocks_before  # the pools are closed: every backend reported
    assert total(m, "cx_feedback_total") == N and total(m, "cx_mot_scored_total") == N
    assert total(m, "cx_negative_mot_total") == negatives
    assert total(m, "cx_alerts_raised_total") == alerts
    assert deadlocks == 0, f"{deadlocks} deadlocks between the replicas"
    assert retries == 0
