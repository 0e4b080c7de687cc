"""Helpers for the reporting tests: known events, a publisher, /metrics parsing."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from shared.contracts import AlertRaised, AlertUpdated, FeedbackReceived, FeedbackScored
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_RECEIVED, FEEDBACK_SCORED, Envelope, event_source
from shared.kafka import Publisher

ADMIN = {"Authorization": "Bearer dev-admin-token"}  # the test environment's built-in admin token
T0 = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)


def received(fid: str, *, channel: str = "kiosk", location: str | None = "store-1", touchpoint: str | None = "checkout",
             rating: tuple[str, int] | None = None, at: datetime = T0, text: str | None = "ok") -> Envelope:
    data = FeedbackReceived(
        id=fid, channel=channel, location=location, touchpoint=touchpoint, text=text,
        rating={"scale": rating[0], "value": rating[1]} if rating else None,
        occurred_at=at, received_at=at, source="test",
    )
    return Envelope.new(FEEDBACK_RECEIVED, data, source=event_source("intake"), key=fid)


def scored(fid: str, mot: int, *, channel: str = "kiosk", location: str | None = "store-1",
           touchpoint: str | None = "checkout", at: datetime = T0) -> Envelope:
    data = FeedbackScored(feedback_id=fid, channel=channel, location=location, touchpoint=touchpoint,
                          occurred_at=at, received_at=at, mot=mot, negative=mot < 0, confidence=0.9)
    return Envelope.new(FEEDBACK_SCORED, data, source=event_source("alerts"), key=fid)


def alert_raised(aid: str, *, severity: int = -2, at: datetime = T0, location: str = "store-1") -> Envelope:
    data = AlertRaised(alert_id=aid, feedback_id=f"fb-{aid}", severity=severity, channel="kiosk",
                       location=location, touchpoint="checkout", raised_at=at, sla_due_at=at + timedelta(hours=1))
    return Envelope.new(ALERT_RAISED, data, source=event_source("alerts"), key=f"alert:{aid}")


def alert_updated(aid: str, status: str, *, severity: int = -2, raised_at: datetime = T0, at: datetime,
                  acknowledged_at: datetime | None = None, resolved_at: datetime | None = None,
                  sla_breached: bool = False, previous: str | None = None) -> Envelope:
    data = AlertUpdated(alert_id=aid, status=status, previous_status=previous, severity=severity, channel="kiosk",
                        location="store-1", touchpoint="checkout", at=at, raised_at=raised_at,
                        acknowledged_at=acknowledged_at, resolved_at=resolved_at, sla_breached=sla_breached)
    return Envelope.new(ALERT_UPDATED, data, source=event_source("alerts"), key=f"alert:{aid}")


def new_id(prefix: str = "fb") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@contextlib.asynccontextmanager
async def publisher(bootstrap: str) -> AsyncIterator[Publisher]:
    pub = Publisher(bootstrap, client_id="reporting-test")
    await pub.start()
    try:
        yield pub
    finally:
        await pub.stop()


async def publish(pub: Publisher, settings: Any, events: list[Envelope]) -> None:
    await pub.publish([(settings.topic(e.event_type.topic), e) for e in events])


async def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """Samples of /metrics: {(name, frozenset(labels.items())): value}."""
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{url}/metrics")).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))
