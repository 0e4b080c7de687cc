"""Alerts: negative moments of truth to the right manager, fast, and recovered.

Consumes ``feedback.received.v1``; publishes ``feedback.scored.v1`` for every
feedback (directly, acknowledged before its batch commits) and ``alert.raised.v1`` /
``alert.updated.v1`` / ``survey.requested.v1`` through the outbox. Background tasks: the
shared mail queue's sender (alert mail, purpose ``alert_notification``) and the SLA
scheduler. HTTP: the recovery-loop API and the signed email-link pages.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.responses import JSONResponse, Response

from services.alerts import admin, handlers, privacy, scheduler
from services.alerts.api import alerts as alerts_api
from services.alerts.api import links as links_api
from services.alerts.api.deps import bearer_auth
from services.alerts.context import Context
from services.alerts.domain import AlertNotFound, Forbidden, InvalidSilence, InvalidTransition, InvalidVerdict
from services.alerts.emails import PURPOSE
from services.alerts.metrics import AlertsMetrics
from services.alerts.repository.backlog import queue_backlog
from services.alerts.routing import Router
from services.alerts.scoring import Scorer
from services.alerts.settings import AlertsSettings
from shared import auth
from shared.clock import Clock, SystemClock
from shared.events import (ALERT_RAISED, ALERT_UPDATED, ERASURE_REQUESTED, FEEDBACK_RECEIVED, FEEDBACK_SCORED,
                           SURVEY_REQUESTED)
from shared.mail.runtime import use_mail_queue
from shared.privacy.runtime import use_erasure
from shared.runtime import ServiceRuntime, install, invalid_request


def create_app(settings: AlertsSettings, *, clock: Clock | None = None, scorer: Scorer | None = None) -> FastAPI:
    """Build the app. The routes file and the signing keys are checked here: a mistake fails
    start-up with a clear message."""
    scorer = scorer or Scorer.load(settings.scoring_model_path)
    router = Router.load(settings.routes_path(), base_sla=settings.sla_seconds(), alert_threshold=scorer.alert_threshold)
    signer = settings.signer()
    clock = clock or SystemClock()
    runtime = ServiceRuntime(
        settings,
        migrations=Path(__file__).parent / "migrations",
        produces=[FEEDBACK_SCORED, ALERT_RAISED, ALERT_UPDATED, SURVEY_REQUESTED],
        # An alert is stored at its batch's commit: alerts commits smaller batches than the default.
        consumer_max_records=settings.alerts_consumer_max_records,
        clock=clock,
    )
    privacy.retain(runtime, settings)  # customers' details and words, their contact history
    use_erasure(runtime)
    mail = use_mail_queue(runtime, purposes=[PURPOSE])
    ctx = Context(
        settings=settings,
        scorer=scorer,
        router=router,
        clock=clock,
        signer=signer,
        metrics=AlertsMetrics(runtime.registry, mail.metrics),
        publish=runtime.publisher.publish,
        auth=bearer_auth(admin_token=settings.admin_token, signer=signer, router=router, clock=clock,
                         pool=lambda: runtime.pool),
    )
    runtime.consume_batches(FEEDBACK_RECEIVED, partial(handlers.on_feedback_received, ctx))
    runtime.consume(ERASURE_REQUESTED, partial(handlers.on_erasure_requested, ctx))

    async def start_tasks(rt: ServiceRuntime) -> None:
        await queue_backlog(rt.pool, sender=settings.smtp_from, clock=clock)
        await privacy.pseudonymise_backlog(rt.pool, settings.privacy_key())  # rows from before migration 0100
        if settings.alerts_scheduler_enabled:
            rt.spawn(scheduler.run(rt.pool, ctx), "alerts-sla-scheduler")

    runtime.on_start(start_tasks)

    app = FastAPI(
        title="Keymoment alerts",
        version="1.0",
        description="Every negative moment of truth reaches the right manager fast, and gets recovered: alerts, "
        "the Explore -> Offer -> Action -> Confirm loop, silences, manager tokens and signed email links.",
    )
    install(app, runtime, context=ctx)

    @app.exception_handler(AlertNotFound)
    async def _not_found(_: Request, exc: AlertNotFound) -> JSONResponse:
        return JSONResponse({"detail": f"no alert {exc}"}, status_code=404)

    @app.exception_handler(InvalidTransition)
    async def _conflict(_: Request, exc: InvalidTransition) -> JSONResponse:
        return JSONResponse({"detail": str(exc), "status": exc.status, "action": exc.action}, status_code=409)

    @app.exception_handler(Forbidden)
    async def _forbidden(_: Request, exc: Forbidden) -> Response:
        return auth.error_response(auth.Forbidden(str(exc)))

    @app.exception_handler(InvalidSilence)
    @app.exception_handler(InvalidVerdict)
    @app.exception_handler(admin.UnknownTeams)
    async def _unprocessable(request: Request, exc: ValueError) -> Response:
        # the documented 422: the request validation's shape, naming the body
        return await request_validation_exception_handler(request, invalid_request(("body",), str(exc)))

    app.include_router(alerts_api.router)
    app.include_router(links_api.router)
    return app
