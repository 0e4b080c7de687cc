"""Survey's Prometheus metrics (``keymoment_survey_*``), on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from shared.metrics import LATENCY_BUCKETS, PREFIX

P = f"{PREFIX}_survey"
DELIVERY_STATES = ("pending", "sending", "sent", "failed", "unsendable")


class SurveyMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.responses = Counter(
            f"{P}_responses_total",
            "Survey submissions by survey and outcome (accepted, already_answered, invalid).",
            ["survey", "outcome"], registry=registry,
        )
        self.feedback_events = Counter(
            f"{P}_feedback_events_total", "feedback.received.v1 events written for accepted responses.",
            ["survey"], registry=registry,
        )
        self.invitations_sent = Counter(
            f"{P}_invitations_sent_total", "Survey invitation emails the SMTP relay accepted.",
            registry=registry,
        )
        self.invitations_failed = Counter(
            f"{P}_invitations_failed_total",
            "Invitations given up on: rejected (permanent SMTP error) or retries_exhausted.",
            ["reason"], registry=registry,
        )
        self.invitation_retries = Counter(
            f"{P}_invitation_retries_total", "Sends that failed transiently and were rescheduled.",
            registry=registry,
        )
        self.invitations = Gauge(
            f"{P}_invitations", "Survey requests by invitation delivery state (unsendable: no email address).",
            ["state"], registry=registry,
        )
        self.send_seconds = Histogram(
            f"{P}_invitation_send_seconds", "Duration of one SMTP send.", buckets=LATENCY_BUCKETS,
            registry=registry,
        )
