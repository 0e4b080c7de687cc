"""Survey: satisfaction surveys (MOT, NPS, CSAT, free text); responses become feedback."""

from pathlib import Path

from fastapi import FastAPI

from services.survey import handlers
from services.survey.settings import SurveySettings
from shared.events import FEEDBACK_RECEIVED, SURVEY_REQUESTED
from shared.runtime import ServiceRuntime, install


def create_app(settings: SurveySettings) -> FastAPI:
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations", produces=[FEEDBACK_RECEIVED])
    runtime.consume(SURVEY_REQUESTED, handlers.on_survey_requested)
    app = FastAPI(title="Keymoment survey", version="1.0")
    install(app, runtime)
    return app
