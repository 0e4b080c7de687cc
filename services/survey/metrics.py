"""Survey's Prometheus metrics (``keymoment_survey_*``), on the app's own registry.

Invitation delivery is counted by the shared mail queue (``keymoment_mail_*{purpose="survey_invitation"}``);
the ``keymoment_survey_invitation*`` counters are the same numbers under the names dashboards knew.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from shared.mail.metrics import MailMetrics
from shared.metrics import PREFIX

P = f"{PREFIX}_survey"
INVITATION_PURPOSE = "survey_invitation"
DELIVERY_STATES = ("pending", "sending", "sent", "uncertain", "failed", "unsendable", "skipped", "withdrawn")


class SurveyMetrics:
    def __init__(self, registry: CollectorRegistry, mail: MailMetrics) -> None:
        self.responses = Counter(
            f"{P}_responses_total",
            "Survey submissions by survey and outcome (accepted, already_answered, invalid).",
            ["survey", "outcome"], registry=registry,
        )
        self.feedback_events = Counter(
            f"{P}_feedback_events_total", "feedback.received.v1 events written for accepted responses.",
            ["survey"], registry=registry,
        )
        self.invitations = Gauge(
            f"{P}_invitations",
            "Survey requests by invitation delivery state (the mail queue's; unsendable: no usable email address; "
            "skipped: by another contact rule; withdrawn: unsubscribed before it was sent).",
            ["state"], registry=registry,
        )
        self.invitations_decided = Counter(
            f"{P}_invitations_decided_total",
            "Invitations decided by the contact rules: status queued or skipped, with the skip reason "
            "(unsubscribed, suppressed, no_address, frequency, min_interval, quiet_hours).",
            ["survey", "status", "reason"], registry=registry,
        )
        self.unsubscribes = Counter(
            f"{P}_unsubscribes_total", "Addresses unsubscribed from invitation mail (one-click or the page).",
            registry=registry,
        )
        self.rate_limited = Counter(
            f"{P}_rate_limited_total",
            "Public page requests refused with 429, by the limit hit: client (address), link (personal link) "
            "or survey (answers to one public survey).",
            ["limit"], registry=registry,
        )
        self.drafts = Counter(
            f"{P}_drafts_saved_total", "Partial answers saved (a page left and reopened keeps them).",
            ["survey"], registry=registry,
        )
        registry.register(_InvitationCounters(mail))


class _InvitationCounters(Collector):
    """The mail queue's counters for invitations, under survey's names."""

    def __init__(self, mail: MailMetrics) -> None:
        self._mail = mail

    def collect(self) -> Iterator[CounterMetricFamily]:
        def value(counter: Counter) -> float:
            for family in counter.collect():
                for sample in family.samples:
                    if sample.name.endswith("_total") and sample.labels.get("purpose") == INVITATION_PURPOSE:
                        return sample.value
            return 0.0

        yield CounterMetricFamily(f"{P}_invitations_sent", "Survey invitations the SMTP relay accepted.",
                                  value=value(self._mail.sent))
        yield CounterMetricFamily(f"{P}_invitation_retries", "Invitation sends that failed transiently and were "
                                  "scheduled again.", value=value(self._mail.retries))
        failed = CounterMetricFamily(f"{P}_invitations_failed", "Invitations given up: the address was refused "
                                     "permanently (5xx).", labels=["reason"])
        failed.add_metric(["rejected"], value(self._mail.failed))
        yield failed
