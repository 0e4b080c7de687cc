"""Prometheus metrics of the alerts service (prefix ``keymoment_alerts_``)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import PREFIX

P = f"{PREFIX}_alerts"
# Minutes to days: acknowledging in 2 minutes vs 2 hours is what matters.
RESPONSE_BUCKETS = (30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14_400, 28_800, 86_400, 259_200, 604_800)


class AlertsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.scored = Counter(f"{P}_feedback_scored_total", "Feedback scored, by MOT.", ["mot"], registry=registry)
        self.raised = Counter(f"{P}_raised_total", "Alerts raised, by severity.", ["severity"], registry=registry)
        self.grouped = Counter(
            f"{P}_feedback_grouped_total", "Negative feedback joined to an open alert, by reason.", ["reason"],
            registry=registry,
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
        self.emails = Counter(
            f"{P}_emails_total", "Notification emails by outcome (sent, retry, failed, uncertain).", ["outcome"],
            registry=registry,
        )
        self.email_seconds = Histogram(
            f"{P}_email_send_seconds", "Time of one SMTP exchange.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30), registry=registry,
        )
        self.open = Gauge(f"{P}_open", "Alerts not resolved, by severity.", ["severity"], registry=registry)
        for severity in ("-3", "-2", "-1"):
            self.raised.labels(severity)
            self.sla_breaches.labels(severity)
        for outcome in ("sent", "retry", "failed", "uncertain"):
            self.emails.labels(outcome)
