"""Survey: satisfaction surveys (MOT, NPS, CSAT, stars, free text); responses become feedback.

Consumes ``survey.requested.v1`` (invitations sent by email in the background),
serves the public survey pages and publishes every answered rating as
``feedback.received.v1`` (channel ``survey``) through the outbox.
"""

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.survey import handlers
from services.survey.api import admin, public
from services.survey.invitations import InvitationSender, Mailer, smtp_mailer
from services.survey.metrics import SurveyMetrics
from services.survey.service import Context
from services.survey.settings import SurveySettings
from shared.auth import BearerAuth, StaticToken
from shared.events import FEEDBACK_RECEIVED, SURVEY_REQUESTED
from shared.runtime import ServiceRuntime, install
from shared.signing import Signer


def create_app(settings: SurveySettings, *, mailer: Mailer | None = None) -> FastAPI:
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations", produces=[FEEDBACK_RECEIVED])
    ctx = Context(
        settings=settings,
        metrics=SurveyMetrics(runtime.registry),
        links=Signer(settings.link_signing_key.get_secret_value()),
        auth=BearerAuth(StaticToken.admin(settings.admin_token)),
    )
    runtime.consume(SURVEY_REQUESTED, partial(handlers.on_survey_requested, ctx))
    send = mailer or smtp_mailer(settings)

    async def start_sender(rt: ServiceRuntime) -> None:
        sender = InvitationSender(rt.pool, settings, ctx.metrics, send)
        sender.task = rt.spawn(sender.run(), "survey-invitation-sender")

        async def stop_sender(_: ServiceRuntime) -> None:
            await sender.stop()

        rt.on_stop(stop_sender)

    runtime.on_start(start_sender)

    app = FastAPI(
        title="Keymoment survey",
        version="1.0",
        description="Bilingual (zh-CN / en) satisfaction surveys — moment of truth, NPS, CSAT, stars and free "
        "text. Every answered rating becomes a feedback.received.v1 event; personal links are answered once.",
    )
    install(app, runtime, context=ctx)
    app.include_router(public.router)
    app.include_router(admin.router)
    return app
