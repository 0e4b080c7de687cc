"""A world for the use cases of alerts without PostgreSQL or Kafka: the in-memory repository,
the fake publisher, a ManualClock, a routes file of our own (:data:`ROUTES`) and the real
scorer; :func:`fb` makes feedback."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from services.alerts import feedback
from services.alerts.api.deps import bearer_auth
from services.alerts.context import Actor, Context
from services.alerts.domain import Delivery, delivery_state
from services.alerts.metrics import AlertsMetrics
from services.alerts.routing import Router
from services.alerts.scoring import Scorer
from services.alerts.settings import AlertsSettings
from services.alerts.unit_of_work import UnitOfWork
from shared.clock import ManualClock
from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope, event_source
from shared.privacy import DEV_PRIVACY_HASH_KEY
from shared.signing import Signer
from tests.unit.alerts.fakes import FakePublisher, InMemoryRepository

T = TypeVar("T")

ROUTES = """
teams:
  ops:
    account_manager: am@example.com
    solution_manager: sm@example.com
    delivery_manager: dm@example.com
    escalation:
      - roles: [delivery_manager]
      - roles: [account_manager]
      - roles: [solution_manager]
    sla:
      -3: 10m
  desk:
    delivery_manager: desk@example.com
    escalation:
      - roles: [delivery_manager]
  duo:
    account_manager: duo.am@example.com
    delivery_manager: [d1@example.com, d2@example.com]
routes:
  - match: {location: "desk-*"}
    team: desk
  - match: {location: "duo-*"}
    team: duo
default_route:
  team: ops
"""
START = datetime(2026, 5, 1, 9, 0, tzinfo=UTC)
ADMIN = Actor("admin", admin=True)


class World:
    def __init__(self, settings: AlertsSettings, scorer: Scorer) -> None:
        self.journal: list[str] = []
        self.repo = InMemoryRepository(self.journal)
        self.publisher = FakePublisher(self.journal)
        self.clock = ManualClock(START)
        self.registry = CollectorRegistry()
        router = Router.load(settings.routes_path(), base_sla=settings.sla_seconds(),
                             alert_threshold=scorer.alert_threshold)
        signer = Signer(b"k" * 32)
        self.ctx = Context(
            settings=settings, scorer=scorer, router=router, clock=self.clock, signer=signer,
            metrics=AlertsMetrics(self.registry), publish=self.publisher.publish,
            auth=bearer_auth(admin_token=settings.admin_token, signer=signer, router=router, clock=self.clock,
                             pool=lambda: None),
        )

    async def run(self, use_case: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """One use case in its own unit of work and transaction (rolled back if it raises)."""
        async with self.repo.transaction():
            return await use_case(UnitOfWork(self.repo), self.ctx, *args, **kwargs)

    async def consume(self, *batch: FeedbackReceived, source: str | None = None) -> None:
        """A consumed batch; each event's source is survey's for survey feedback, else intake's
        (``source``: every event's)."""
        await self.run(feedback.score_batch, [event(fb, source) for fb in batch])

    def alert_of(self, fb: FeedbackReceived):
        link = self.repo.links[fb.id]
        return self.repo.alerts[link.alert_id]

    def notifications(self, alert_id: str) -> list[tuple[str, int, int, str]]:
        """(kind, level, seq, status) of the alert's notifications, in the order they were written
        (status: suppressed, or its mails' state: pending here, where nothing sends)."""
        return [(n.kind, n.level, n.seq, delivery_state(n, self._deliveries(n.notification_id)))
                for n in self.repo.notifications.values() if n.alert_id == alert_id]

    def _deliveries(self, notification_id: str) -> list[Delivery]:
        return [Delivery((m.recipient,), "pending", 0, m.message_id, None, m.date, None, {})
                for m in self.repo.mails_of(notification_id)]

    def history(self, alert_id: str) -> list[str]:
        return [e.action for e in self.repo.events if e.alert_id == alert_id]

    def outbox(self, event_type: str) -> list[Any]:
        return [e for _, e in self.repo.outbox if e.type == event_type]

    def metric(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


def event(fb: FeedbackReceived, source: str | None = None) -> Envelope:
    """A ``feedback.received.v1`` event of ``fb`` from ``source`` (default: where such feedback comes from)."""
    source = source or event_source("survey" if fb.channel.value == "survey" else "intake")
    return Envelope.new(FEEDBACK_RECEIVED, fb, source=source, key=fb.partition_key(DEV_PRIVACY_HASH_KEY.encode()))


def make_settings(routes: Path, **overrides: Any) -> AlertsSettings:
    return AlertsSettings(keymoment_env="test", alerts_routes_file=routes, public_base_url="http://alerts.test",
                          **overrides)


def fb(*, mot: int | None = None, text: str | None = None, location: str | None = None,
       touchpoint: str | None = None, customer: dict | None = None, channel: str = "kiosk",
       survey: dict | None = None, feedback_id: str | None = None, at: datetime = START) -> FeedbackReceived:
    """A feedback; ``mot`` is a rating on the MOT scale (-3..3), which the scorer takes as it is."""
    return FeedbackReceived(
        id=feedback_id or str(uuid.uuid4()), received_at=at, source="test", channel=channel, text=text,
        rating={"scale": "mot", "value": mot} if mot is not None else None, location=location,
        touchpoint=touchpoint, customer=customer, survey=survey,
    )
