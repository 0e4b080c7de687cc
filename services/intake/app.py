"""Intake: every channel's feedback in, onto ``feedback.received.v1``."""

from pathlib import Path

from fastapi import FastAPI

from services.intake.api import routes
from services.intake.settings import IntakeSettings
from shared.events import FEEDBACK_RECEIVED
from shared.runtime import ServiceRuntime, install


def create_app(settings: IntakeSettings) -> FastAPI:
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations", produces=[FEEDBACK_RECEIVED])
    app = FastAPI(
        title="Keymoment intake",
        version="1.0",
        description="Submit customer feedback from any channel. Every 202 is durable: the feedback reaches "
        "every downstream consumer exactly once in effect.",
    )
    install(app, runtime)
    app.include_router(routes.router)
    return app
