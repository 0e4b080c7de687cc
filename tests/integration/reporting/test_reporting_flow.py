"""Reporting against the real broker and PostgreSQL: events in, cx_* series and
KPIs out; redelivery and restarts do not change the counts."""

from __future__ import annotations

import uuid
from datetime import timedelta

import asyncpg
import httpx
import pytest

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from tests.integration.reporting.support import (
    ADMIN, T0, alert_raised, alert_updated, new_id, publish, publisher, received, scored, scrape, total, value,
)
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration


def settings(service_env: dict, **overrides) -> ReportingSettings:
    # each test its own consumer group: members of an earlier test's group would delay the join
    env = {**service_env, "kafka_consumer_group": f"reporting-{uuid.uuid4().hex[:8]}"}
    return ReportingSettings(**env, reporting_refresh_seconds=0.1, **overrides)


async def test_events_become_series_and_kpis_and_redelivery_never_counts_twice(service_env, kafka_bootstrap):
    s = settings(service_env, reporting_max_locations=2)
    ids = [new_id() for _ in range(6)]
    events = [
        received(ids[0], rating=("nps", 10)), scored(ids[0], 2),
        received(ids[1], rating=("nps", 8), location="store-2"), scored(ids[1], 1, location="store-2"),
        received(ids[2], rating=("nps", 3), channel="web"), scored(ids[2], -2, channel="web"),
        received(ids[3], rating=("csat", 5), location="store-3"), scored(ids[3], 0, location="store-3"),
        received(ids[4], rating=("csat", 2), location=None), scored(ids[4], -3, location=None),
        # scored before received: the two topics interleave in any order
        scored(ids[5], -1, channel="email", touchpoint="billing"),
        received(ids[5], channel="email", touchpoint="billing", rating=("csat", 4)),
    ]
    async with running(create_app(s)) as app, publisher(kafka_bootstrap) as pub:
        # store-1 and store-2 first: which locations win the two slots depends on
        # arrival order, and events on different partitions arrive in any order
        await publish(pub, s, events[:4])

        async def first_two() -> bool:
            return total(await scrape(app.url), "cx_feedback_total") == 2
        await wait_until(first_two, timeout=20, what="first 2 feedback counted")
        await publish(pub, s, events[4:])
        await publish(pub, s, events[:4])  # redelivered (same event ids)
        # the same feedback again under new event ids (a producer's retry), twice in one batch: still once
        await publish(pub, s, [received(ids[0], rating=("nps", 10)), received(ids[0], rating=("nps", 10)),
                               scored(ids[0], 2), scored(ids[0], 2)])

        async def counted() -> bool:
            m = await scrape(app.url)
            return total(m, "cx_feedback_total") == 6 and total(m, "cx_mot_scored_total") == 6
        await wait_until(counted, timeout=20, what="6 feedback counted")
        m = await scrape(app.url)

    assert value(m, "cx_feedback_total", channel="kiosk", location="store-1", touchpoint="checkout") == 1
    assert value(m, "cx_feedback_total", channel="kiosk", location="store-2", touchpoint="checkout") == 1
    # two location slots: store-1 and store-2 took them; store-3 is folded, no location is "unknown"
    assert value(m, "cx_feedback_total", channel="kiosk", location="other", touchpoint="checkout") == 1
    assert value(m, "cx_feedback_total", channel="kiosk", location="unknown", touchpoint="checkout") == 1
    assert value(m, "cx_nps_responses_total", channel="kiosk", category="promoter") == 1
    assert value(m, "cx_nps_responses_total", channel="kiosk", category="passive") == 1
    assert value(m, "cx_nps_responses_total", channel="web", category="detractor") == 1
    assert value(m, "cx_nps_responses_total", channel="web", category="promoter") == 0  # present at zero
    assert total(m, "cx_csat_responses_total", score="5") == 1
    assert total(m, "cx_csat_responses_total", score="4") == 1
    assert total(m, "cx_csat_responses_total", score="2") == 1
    assert total(m, "cx_negative_mot_total") == 3
    assert value(m, "cx_negative_mot_total", channel="email", location="store-1", touchpoint="billing") == 1
    assert value(m, "cx_mot_responses_total", channel="kiosk", score="-3") == 1
    assert total(m, "cx_mot_responses_total") == 6


async def test_alert_histograms_open_gauge_and_sla_breaches(service_env, kafka_bootstrap):
    s = settings(service_env)
    a, b, c = new_id("al"), new_id("al"), new_id("al")
    events = [
        alert_raised(a, severity=-3),
        alert_updated(a, "acknowledged", severity=-3, at=T0 + timedelta(seconds=200),
                      acknowledged_at=T0 + timedelta(seconds=200)),
        alert_updated(a, "resolved", severity=-3, at=T0 + timedelta(seconds=2000),
                      acknowledged_at=T0 + timedelta(seconds=200), resolved_at=T0 + timedelta(seconds=2000)),
        # b: the update arrives before the raise; SLA breached, then acknowledged late
        alert_updated(b, "open", at=T0 + timedelta(hours=1), sla_breached=True),
        alert_raised(b),
        alert_updated(b, "acknowledged", at=T0 + timedelta(hours=2), acknowledged_at=T0 + timedelta(hours=2),
                      sla_breached=True),
        alert_raised(c, severity=-1),
    ]
    async with running(create_app(s)) as app, publisher(kafka_bootstrap) as pub:
        await publish(pub, s, events)
        await publish(pub, s, events)  # every event twice

        async def counted() -> bool:
            m = await scrape(app.url)
            return (total(m, "cx_alerts_raised_total") == 3 and total(m, "cx_alert_ack_seconds_count") == 2
                    and total(m, "cx_alert_resolve_seconds_count") == 1)
        await wait_until(counted, timeout=20, what="alerts counted")
        m = await scrape(app.url)
        async with httpx.AsyncClient(base_url=app.url, headers=ADMIN) as http:
            body = (await http.get("/v1/kpis", params={"from": "2026-05-01T00:00:00Z",
                                                       "to": "2026-05-02T00:00:00Z"})).json()

    assert value(m, "cx_alerts_open", severity="-3") == 0
    assert value(m, "cx_alerts_open", severity="-2") == 1
    assert value(m, "cx_alerts_open", severity="-1") == 1
    assert value(m, "cx_alert_sla_breaches_total", severity="-2") == 1
    assert value(m, "cx_alert_ack_seconds_bucket", severity="-3", le="300.0") == 1
    assert value(m, "cx_alert_ack_seconds_bucket", severity="-3", le="60.0") == 0
    assert value(m, "cx_alert_ack_seconds_sum", severity="-3") == 200
    assert value(m, "cx_alert_ack_seconds_bucket", severity="-2", le="7200.0") == 1
    assert value(m, "cx_alert_ack_seconds_bucket", severity="-2", le="+Inf") == 1
    assert value(m, "cx_alert_resolve_seconds_sum", severity="-3") == 2000
    row = body["rows"][0]
    assert (row["alerts_raised"], row["alerts_open"], row["sla_breaches"]) == (3, 2, 1)
    assert row["ack_p50_seconds"] == pytest.approx((200 + 7200) / 2)
    assert row["resolve_p50_seconds"] == pytest.approx(2000)


async def test_restart_keeps_counters_and_a_second_replica_exposes_the_same(service_env, kafka_bootstrap, database_url):
    s = settings(service_env)
    ids = [new_id() for _ in range(4)]
    async with running(create_app(s)) as app, publisher(kafka_bootstrap) as pub:
        await publish(pub, s, [received(i, rating=("nps", 9)) for i in ids])

        async def four() -> bool:
            return total(await scrape(app.url), "cx_feedback_total") == 4
        await wait_until(four, timeout=20, what="4 feedback counted")

    # a new process (restart) and a second replica at once: both read the same durable totals
    async with running(create_app(s)) as first, running(create_app(s)) as second:
        one, two = await scrape(first.url), await scrape(second.url)
        assert total(one, "cx_feedback_total") == total(two, "cx_feedback_total") == 4
        assert value(one, "cx_nps_responses_total", channel="kiosk", category="promoter") == 4
        async with publisher(kafka_bootstrap) as pub:
            await publish(pub, s, [received(new_id(), rating=("nps", 0))])

        async def both_five() -> bool:
            return (total(await scrape(first.url), "cx_feedback_total") == 5
                    and total(await scrape(second.url), "cx_feedback_total") == 5)
        await wait_until(both_five, timeout=20, what="both replicas at 5")
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM reporting.feedback_facts") == 5
    finally:
        await conn.close()


async def test_kpi_api_groups_periods_csv_and_needs_the_admin_token(service_env, kafka_bootstrap):
    s = settings(service_env)
    day2 = T0 + timedelta(days=1)
    events = []
    # day 1, kiosk at store-1: NPS 10, 10, 6, 8 -> (2-1)/4 = +25; CSAT 5, 3 -> 0.5
    for i, (scale, v, mot) in enumerate([("nps", 10, 3), ("nps", 10, 2), ("nps", 6, -2), ("nps", 8, 1),
                                         ("csat", 5, 2), ("csat", 3, -1)]):
        fid = f"d1-{i}-{new_id()}"
        events += [received(fid, rating=(scale, v)), scored(fid, mot)]
    # day 2, web at 北京国贸店: one detractor
    fid = new_id()
    events += [received(fid, channel="web", location="北京国贸店", rating=("nps", 2), at=day2),
               scored(fid, -3, channel="web", location="北京国贸店", at=day2)]
    async with running(create_app(s)) as app, publisher(kafka_bootstrap) as pub:
        await publish(pub, s, events)

        async def all_in() -> bool:
            return total(await scrape(app.url), "cx_mot_scored_total") == 7
        await wait_until(all_in, timeout=20, what="7 scored")
        async with httpx.AsyncClient(base_url=app.url) as http:
            assert (await http.get("/v1/kpis")).status_code == 401
            assert (await http.get("/v1/kpis", headers={"Authorization": "Bearer nope"})).status_code == 401
            day1 = (await http.get("/v1/kpis", headers=ADMIN, params={
                "from": "2026-05-01T00:00:00Z", "to": "2026-05-02T00:00:00Z"})).json()
            both = (await http.get("/v1/kpis", headers=ADMIN, params={
                "from": "2026-05-01T00:00:00Z", "to": "2026-05-03T00:00:00Z", "group_by": "location"})).json()
            csv_response = await http.get("/v1/kpis.csv", headers=ADMIN, params={
                "from": "2026-05-01T00:00:00Z", "to": "2026-05-03T00:00:00Z", "group_by": "location"})
            same_csv = await http.get("/v1/kpis", headers=ADMIN, params={
                "from": "2026-05-01T00:00:00Z", "to": "2026-05-03T00:00:00Z", "group_by": "location",
                "format": "csv"})
            backwards = await http.get("/v1/kpis", headers=ADMIN, params={
                "from": "2026-05-03T00:00:00Z", "to": "2026-05-01T00:00:00Z"})
            bad_group = await http.get("/v1/kpis", headers=ADMIN, params={"group_by": "customer"})

    assert day1["from"].startswith("2026-05-01T00:00:00")
    (total_row,) = day1["rows"]
    assert total_row["feedback"] == 6
    assert total_row["nps"] == pytest.approx(25.0)
    assert total_row["csat"] == pytest.approx(0.5)
    assert total_row["mot_mean"] == pytest.approx(5 / 6)
    assert total_row["negative_rate"] == pytest.approx(2 / 6)
    by_location = {r["group"]: r for r in both["rows"]}
    assert set(by_location) == {"store-1", "北京国贸店"}
    assert by_location["北京国贸店"]["nps"] == pytest.approx(-100.0)
    assert by_location["北京国贸店"]["negative_rate"] == 1.0
    assert csv_response.status_code == 200 and csv_response.headers["content-type"].startswith("text/csv")
    text = csv_response.content.decode("utf-8-sig")
    lines = text.strip().splitlines()
    assert lines[0].startswith("from,to,group_by,group,feedback,nps")
    assert len(lines) == 3 and any("北京国贸店" in line for line in lines)
    assert same_csv.content == csv_response.content
    assert backwards.status_code == 422
    assert bad_group.status_code == 422
