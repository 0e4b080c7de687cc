"""Prometheus metrics of the alerts service (prefix ``keymoment_alerts_``).

Alert mail is counted by the shared mail queue (``keymoment_mail_*{purpose="alert_notification"}``,
with the oldest undelivered mail's age); ``keymoment_alerts_emails_total{outcome}`` is the same
numbers under the name dashboards knew.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from services.alerts.emails import PURPOSE
from shared.metrics import PREFIX

if TYPE_CHECKING:  # the use cases import this module, and the mail queue's metrics import asyncpg
    from shared.mail.metrics import MailMetrics

P = f"{PREFIX}_alerts"
# A consumed batch's phases: a millisecond to seconds (a batch of 500 on a loaded machine).
PHASE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
BATCH_PHASES = ("score", "follow_up", "flush", "publish_wait")
# Minutes to days: acknowledging in 2 minutes vs 2 hours is what matters.
RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400, 259_200, 604_800)


class AlertsMetrics:
    def __init__(self, registry: CollectorRegistry, mail: MailMetrics | None = None) -> None:
        self.scored = Counter(f"{P}_feedback_scored_total", "Feedback scored, by MOT.", ["mot"], registry=registry)
        self.raised = Counter(f"{P}_raised_total", "Alerts raised, by severity.", ["severity"], registry=registry)
        self.grouped = Counter(
            f"{P}_feedback_grouped_total", "Negative feedback joined to an open alert, by reason.", ["reason"],
            registry=registry,
        )
        self.min_confidence = Counter(
            f"{P}_min_confidence_decisions_total",
            "Text-only verdicts a route's min_confidence decided otherwise than the scorer's threshold: held "
            "(negative, no alert) or lowered (not negative, alerted as MOT -1).", ["decision"], registry=registry,
        )
        self.verdicts = Counter(
            f"{P}_verdicts_total", "Managers' verdicts on alerted feedback, by verdict (correct, false_alarm).",
            ["verdict"], registry=registry,
        )
        self.silenced = Counter(f"{P}_notifications_silenced_total", "Notifications muted by a silence.", registry=registry)
        self.reopened = Counter(f"{P}_reopened_total", "Alerts reopened by a negative recovery answer.", registry=registry)
        self.time_to_ack = Histogram(
            f"{P}_time_to_acknowledge_seconds", "From raise to acknowledgement.", ["severity"],
            buckets=RESPONSE_BUCKETS, registry=registry,
        )
        self.time_to_resolve = Histogram(
            f"{P}_time_to_resolve_seconds", "From raise to resolution.", ["severity"],
            buckets=RESPONSE_BUCKETS, registry=registry,
        )
        self.sla_breaches = Counter(
            f"{P}_sla_breaches_total", "Escalations because an alert was not acknowledged in time.", ["severity"],
            registry=registry,
        )
        self.open = Gauge(f"{P}_open", "Alerts not resolved, by severity.", ["severity"], registry=registry)
        self.batch_phase = Histogram(
            f"{P}_feedback_batch_phase_seconds",
            "Wall time of each phase of a consumed feedback batch: score (scoring, with the turns the event loop "
            "takes between chunks for the mail sender and the API), follow_up (reads and decisions for negative "
            "feedback and recovery answers), flush (the batch's one-statement write), publish_wait (Kafka's "
            "acknowledgement of feedback.scored.v1 still awaited after the flush). The consumer's own dedupe, "
            "decoding and commit are the rest of keymoment_consumer_batch_seconds.",
            ["phase"], buckets=PHASE_BUCKETS, registry=registry,
        )
        for phase in BATCH_PHASES:
            self.batch_phase.labels(phase)
        for decision in ("held", "lowered"):
            self.min_confidence.labels(decision)
        for verdict in ("correct", "false_alarm"):
            self.verdicts.labels(verdict)
        for severity in ("-3", "-2", "-1"):
            self.raised.labels(severity)
            self.sla_breaches.labels(severity)
        if mail is not None:
            registry.register(_EmailCounters(mail))


class _EmailCounters(Collector):
    """The mail queue's counters of alert mail under the name alerts had (``outcome`` label)."""

    OUTCOMES = (("sent", "sent"), ("retry", "retries"), ("failed", "failed"), ("uncertain", "uncertain"))

    def __init__(self, mail: MailMetrics) -> None:
        self._mail = mail

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            f"{P}_emails", "Alert mails by outcome (sent, retry, failed, uncertain): keymoment_mail_*_total of "
            'purpose="alert_notification".', labels=["outcome"],
        )
        for outcome, counter in self.OUTCOMES:
            family.add_metric([outcome], self._mail.total(getattr(self._mail, counter), PURPOSE))
        yield family
