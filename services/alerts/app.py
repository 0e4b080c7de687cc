"""Alerts: negative moments of truth to the right manager, fast, and recovered."""

from pathlib import Path

from fastapi import FastAPI

from services.alerts.settings import AlertsSettings
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_SCORED, SURVEY_REQUESTED
from shared.runtime import ServiceRuntime, install


def create_app(settings: AlertsSettings) -> FastAPI:
    runtime = ServiceRuntime(
        settings,
        migrations=Path(__file__).parent / "migrations",
        produces=[FEEDBACK_SCORED, ALERT_RAISED, ALERT_UPDATED, SURVEY_REQUESTED],
    )
    app = FastAPI(title="Keymoment alerts", version="1.0")
    install(app, runtime)
    return app
