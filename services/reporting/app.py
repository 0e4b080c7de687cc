"""Reporting: satisfaction KPIs from the event stream, for Prometheus and people."""

from __future__ import annotations

from functools import partial
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.reporting import handlers
from services.reporting.api import kpis
from services.reporting.exposition import KpiRefresher, KpiSnapshot
from services.reporting.service import Context
from services.reporting.settings import ReportingSettings
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_RECEIVED, FEEDBACK_SCORED
from shared.runtime import ServiceRuntime, install


def create_app(settings: ReportingSettings) -> FastAPI:
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations")
    ctx = Context.of(settings)
    runtime.consume_batches(FEEDBACK_RECEIVED, partial(handlers.on_feedback_received, ctx=ctx))
    runtime.consume_batches(FEEDBACK_SCORED, partial(handlers.on_feedback_scored, ctx=ctx))
    runtime.consume(ALERT_RAISED, partial(handlers.on_alert_raised, ctx=ctx))
    runtime.consume(ALERT_UPDATED, partial(handlers.on_alert_updated, ctx=ctx))

    snapshot = KpiSnapshot()
    state: dict[str, KpiRefresher] = {}

    async def start_refresher(rt: ServiceRuntime) -> None:
        refresher = KpiRefresher(rt.pool, snapshot, ctx.labels, rt.registry, every=settings.reporting_refresh_seconds)
        state["refresher"] = refresher
        rt.spawn(refresher.run(), "reporting-kpi-refresher")

    async def refresher_ready() -> str | None:
        refresher = state.get("refresher")
        return refresher.ready() if refresher else "not started"

    runtime.on_start(start_refresher)
    runtime.readiness_check(refresher_ready)

    app = FastAPI(title="Keymoment reporting", version="1.0")
    app.state.reporting_ctx = ctx
    app.state.kpi_snapshot = snapshot
    app.include_router(kpis.router)

    # Registered before install()'s /metrics, so this one answers: the registry's own metrics plus the
    # cx_* text rendered once per snapshot (a registry collector would re-render 15,000 series per scrape).
    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        await runtime.refresh_gauges()
        return Response(generate_latest(runtime.registry) + snapshot.text, media_type=CONTENT_TYPE_LATEST)

    install(app, runtime)
    return app
