"""Prometheus helpers: a registry per app (no global state), process metrics,
HTTP metrics labelled by route template, and the consumer metrics."""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

PREFIX = "keymoment"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def new_registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


class ConsumerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            f"{PREFIX}_consumer_lag_messages", "Messages behind the end of each partition.",
            ["group", "topic", "partition"], registry=registry,
        )
        self.processed = Counter(
            f"{PREFIX}_consumer_events_total", "Events consumed, by outcome (ok, dead_lettered, passed_over: nothing to do with them then).",
            ["group", "topic", "outcome"], registry=registry,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters_total",
            "Events sent to <topic>.dlq, by reason (invalid, unexpected_type, untrusted_source, permanent, unexpected).",
            ["group", "topic", "reason"], registry=registry,
        )
        self.retries = Counter(
            f"{PREFIX}_consumer_retries_total",
            "Transactions tried again after a failure, by kind (transient: a dependency; unexpected).",
            ["group", "kind"], registry=registry,
        )
        self.bisections = Counter(
            f"{PREFIX}_consumer_bisections_total", "Failed batches split in halves to find the event that fails.",
            ["group"], registry=registry,
        )
        self.batch_seconds = Histogram(
            f"{PREFIX}_consumer_batch_seconds", "Time to process one consumed batch.",
            ["group"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.event_age_seconds = Histogram(
            f"{PREFIX}_consumer_event_age_seconds", "Time from an event's creation to its processing.",
            ["group", "topic"], buckets=LATENCY_BUCKETS, registry=registry,
        )


class HttpMetrics:
    """Request count and latency by method, route template and status."""

    def __init__(self, registry: CollectorRegistry, service: str) -> None:
        self.service = service
        self.requests = Counter(
            f"{PREFIX}_http_requests_total", "HTTP requests.", ["service", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            f"{PREFIX}_http_request_duration_seconds", "HTTP request latency.", ["service", "method", "route"],
            buckets=LATENCY_BUCKETS, registry=registry,
        )


class MetricsMiddleware:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on hot paths);
    labels by route template, never by raw path."""

    def __init__(self, app: Callable, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            template = getattr(scope.get("route"), "path", None) or "unmatched"
            m = self.metrics
            m.requests.labels(m.service, scope["method"], template, str(status)).inc()
            m.latency.labels(m.service, scope["method"], template).observe(time.perf_counter() - started)
