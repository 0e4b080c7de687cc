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
DELIVERY_STATES = ("pending", "sending", "sent", "uncertain", "failed", "unsendable")


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
            "Survey requests by invitation delivery state (the mail queue's; unsendable: no usable email address).",
            ["state"], registry=registry,
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
