"""The mail queue's Prometheus metrics (``keymoment_mail_*``), labelled by purpose."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.mail import queue
from shared.metrics import LATENCY_BUCKETS, PREFIX

P = f"{PREFIX}_mail"


class MailMetrics:
    def __init__(self, registry: CollectorRegistry, purposes: Sequence[str]) -> None:
        self.registry = registry
        self.purposes = tuple(purposes)
        self._seen = set(self.purposes)
        self.sent = Counter(
            f"{P}_sent_total", "Mails the SMTP relay took for every recipient it did not refuse.",
            ["purpose"], registry=registry,
        )
        self.retries = Counter(
            f"{P}_retries_total",
            "Attempts that ended in a transient failure (relay unreachable, 4xx) and were scheduled again.",
            ["purpose"], registry=registry,
        )
        self.failed = Counter(
            f"{P}_failed_total", "Mails given up: every recipient refused permanently (5xx).",
            ["purpose"], registry=registry,
        )
        self.refused_recipients = Counter(
            f"{P}_refused_recipients_total",
            "Recipients refused permanently (5xx); the mail still goes to the others.",
            ["purpose"], registry=registry,
        )
        self.uncertain = Counter(
            f"{P}_uncertain_total",
            "Sends whose outcome is unknown (connection broke during DATA, or the sending process died), "
            "resolved by MAIL_UNCERTAIN_POLICY.",
            ["purpose"], registry=registry,
        )
        self.send_seconds = Histogram(
            f"{P}_send_seconds", "Duration of one SMTP transaction (MAIL to the DATA reply).",
            ["purpose"], buckets=LATENCY_BUCKETS, registry=registry,
        )
        self.oldest_pending = Gauge(
            f"{P}_oldest_pending_seconds",
            "Age of the oldest mail neither delivered nor given up (pending, sending or uncertain); 0 when none.",
            ["purpose"], registry=registry,
        )
        for purpose in self.purposes:  # every series exists from the start (alert rules need it)
            for metric in (self.sent, self.retries, self.failed, self.refused_recipients, self.uncertain,
                           self.oldest_pending):
                metric.labels(purpose)

    @staticmethod
    def total(counter: Counter, purpose: str) -> float:
        """One purpose's value of one of these counters (for a service's view under an older name)."""
        for family in counter.collect():
            for sample in family.samples:
                if sample.name.endswith("_total") and sample.labels.get("purpose") == purpose:
                    return sample.value
        return 0.0

    async def refresh(self, conn: asyncpg.Connection | asyncpg.Pool, *, now: datetime) -> None:
        """Set the oldest-pending gauge from the table (at scrape time)."""
        ages = await queue.oldest_unsettled(conn, now=now)
        self._seen.update(ages)
        for purpose in self._seen:
            self.oldest_pending.labels(purpose).set(ages.get(purpose, 0.0))
