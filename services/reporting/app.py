"""Reporting: satisfaction KPIs from the event stream, for Prometheus and people."""

from pathlib import Path

from fastapi import FastAPI

from services.reporting import handlers
from services.reporting.settings import ReportingSettings
from shared.events import FEEDBACK_RECEIVED
from shared.runtime import ServiceRuntime, install


def create_app(settings: ReportingSettings) -> FastAPI:
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations")
    runtime.consume(FEEDBACK_RECEIVED, handlers.on_feedback_received)
    app = FastAPI(title="Keymoment reporting", version="1.0")
    install(app, runtime)
    return app
