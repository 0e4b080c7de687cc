"""Alerts: negative moments of truth to the right manager, fast, and recovered.

Consumes ``feedback.received.v1``; publishes ``feedback.scored.v1`` for every
feedback (directly, acknowledged before its batch commits) and ``alert.raised.v1`` /
``alert.updated.v1`` / ``survey.requested.v1`` through the outbox. Background tasks: the notification sender (SMTP) and the
SLA scheduler. HTTP: the recovery-loop API and the signed email-link pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.alerts import handlers, scheduler
from services.alerts.api import alerts as alerts_api
from services.alerts.api import links as links_api
from services.alerts.context import Context
from services.alerts.domain import AlertNotFound, Forbidden, InvalidTransition
from services.alerts.links import Signer
from services.alerts.metrics import AlertsMetrics
from services.alerts.routing import Router
from services.alerts.scoring import Scorer
from services.alerts.sender import NotificationSender
from services.alerts.settings import AlertsSettings
from shared.clock import Clock, SystemClock
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_RECEIVED, FEEDBACK_SCORED, SURVEY_REQUESTED
from shared.runtime import ServiceRuntime, install


@dataclass(frozen=True)
class AlertsComponents:
    """What ``create_app`` built (``app.state.alerts``)."""

    ctx: Context
    sender: NotificationSender | None  # None when ALERTS_MAIL_SENDER_ENABLED is off


def create_app(settings: AlertsSettings, *, clock: Clock | None = None, scorer: Scorer | None = None) -> FastAPI:
    """Build the app. The routes file is validated here: a bad file fails start-up with a clear message."""
    router = Router.load(settings.routes_path(), base_sla=settings.sla_seconds())
    clock = clock or SystemClock()
    runtime = ServiceRuntime(
        settings,
        migrations=Path(__file__).parent / "migrations",
        produces=[FEEDBACK_SCORED, ALERT_RAISED, ALERT_UPDATED, SURVEY_REQUESTED],
        # An alert is stored at its batch's commit: alerts commits smaller batches than the default.
        consumer_max_records=settings.alerts_consumer_max_records,
        clock=clock,
    )
    # A customer's "recent contacts" reach back ALERTS_HISTORY_DAYS; older moments are deleted.
    runtime.retain("customer_moments", "at", settings.alerts_history_days)
    ctx = Context(
        settings=settings,
        scorer=scorer or Scorer.load(settings.scoring_model_path),
        router=router,
        clock=clock,
        signer=Signer(settings.link_signing_key.get_secret_value().encode()),
        metrics=AlertsMetrics(runtime.registry),
        publish=runtime.publisher.publish,
    )
    runtime.consume_batches(FEEDBACK_RECEIVED, partial(handlers.on_feedback_received, ctx))
    sender = NotificationSender(lambda: runtime.pool, ctx) if settings.alerts_mail_sender_enabled else None

    async def start_tasks(rt: ServiceRuntime) -> None:
        if sender is not None:
            sender.task = rt.spawn(sender.run(), "alerts-notification-sender")
        if settings.alerts_scheduler_enabled:
            rt.spawn(scheduler.run(rt.pool, ctx), "alerts-sla-scheduler")

    async def stop_tasks(_: ServiceRuntime) -> None:
        if sender is not None:
            await sender.stop()

    runtime.on_start(start_tasks)
    runtime.on_stop(stop_tasks)

    app = FastAPI(
        title="Keymoment alerts",
        version="1.0",
        description="Every negative moment of truth reaches the right manager fast, and gets recovered: alerts, "
        "the Explore -> Offer -> Action -> Confirm loop, silences, manager tokens and signed email links.",
    )
    app.state.alerts = AlertsComponents(ctx=ctx, sender=sender)
    install(app, runtime)

    @app.exception_handler(AlertNotFound)
    async def _not_found(_: Request, exc: AlertNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"no alert {exc}"}, status_code=404)

    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "status": exc.status, "action": exc.action}, status_code=409)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=403)

    app.include_router(alerts_api.router)
    app.include_router(links_api.router)
    return app
