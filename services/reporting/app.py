"""Reporting: satisfaction KPIs from the event stream, for Prometheus and people."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.reporting import handlers
from services.reporting.api import kpis
from services.reporting.api import privacy as privacy_api
from services.reporting.exposition import KpiRefresher
from services.reporting.service import Context, label_folder
from services.reporting.settings import ReportingSettings
from shared.auth import BearerAuth, StaticToken
from shared.events import (ALERT_RAISED, ALERT_UPDATED, ERASURE_APPLIED, ERASURE_REQUESTED, FEEDBACK_RECEIVED,
                           FEEDBACK_SCORED)
from shared.privacy.runtime import use_erasure
from shared.runtime import ServiceRuntime, install


def create_app(settings: ReportingSettings) -> FastAPI:
    # Publishes erasure.requested.v1: reporting hosts the erasure register (services/reporting/erasures.py).
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations", produces=[ERASURE_REQUESTED])
    labels = label_folder(settings)
    ctx = Context(
        settings=settings,
        labels=labels,
        refresher=KpiRefresher(labels, runtime.registry, every=settings.reporting_refresh_seconds),
        auth=BearerAuth(StaticToken.admin(settings.admin_token)),
        clock=runtime.clock,
    )
    use_erasure(runtime)
    runtime.consume(ERASURE_REQUESTED, partial(handlers.on_erasure_requested, ctx))
    runtime.consume(ERASURE_APPLIED, partial(handlers.on_erasure_applied, ctx))
    runtime.consume_batches(handlers.CONSUMED, partial(handlers.on_events, ctx))

    async def start_refresher(rt: ServiceRuntime) -> None:
        rt.spawn(ctx.refresher.run(rt.pool), "reporting-kpi-refresher")

    async def refresher_ready() -> str | None:
        return ctx.refresher.ready()

    runtime.on_start(start_refresher)
    runtime.readiness_check(refresher_ready)

    # /metrics serves the registry's own metrics plus the cx_* text rendered once per snapshot (a registry
    # collector would re-render 15,000 series per scrape); METRICS_TOKEN guards it (required in production).
    runtime.expose(lambda: ctx.refresher.text)

    app = FastAPI(title="Keymoment reporting", version="1.0")
    app.include_router(kpis.router)
    app.include_router(privacy_api.router)
    install(app, runtime, context=ctx)
    return app
