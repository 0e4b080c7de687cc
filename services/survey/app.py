"""Survey: satisfaction surveys (MOT, NPS, CSAT, stars, free text); responses become feedback.

Consumes ``survey.requested.v1`` (the invitation is rendered and queued on the
shared mail queue in the same transaction; its sender mails it), serves the
public survey pages and publishes every answered rating as
``feedback.received.v1`` (channel ``survey``) through the outbox.
"""

from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.survey import handlers, invitations
from services.survey.api import admin, public
from services.survey.metrics import SurveyMetrics
from services.survey.service import Context
from services.survey.settings import SurveySettings
from shared.auth import BearerAuth, StaticToken
from shared.events import FEEDBACK_RECEIVED, SURVEY_REQUESTED
from shared.mail.runtime import use_mail_queue
from shared.runtime import ServiceRuntime, install


def create_app(settings: SurveySettings) -> FastAPI:
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations", produces=[FEEDBACK_RECEIVED])
    mail = use_mail_queue(runtime, purposes=[invitations.PURPOSE])
    metrics = SurveyMetrics(runtime.registry, mail.metrics)
    ctx = Context(
        settings=settings,
        clock=runtime.clock,
        metrics=metrics,
        links=settings.signer(),  # LINK_SIGNING_KEY, and LINK_SIGNING_OLD_KEYS verify-only
        auth=BearerAuth(StaticToken.admin(settings.admin_token)),
        mail=mail,
    )
    runtime.consume(SURVEY_REQUESTED, partial(handlers.on_survey_requested, ctx))

    async def queue_backlog(rt: ServiceRuntime) -> None:
        await invitations.queue_backlog(rt.pool, settings, rt.clock)

    async def refresh_gauge() -> None:
        await invitations.refresh_gauge(runtime.pool, metrics)

    runtime.on_start(queue_backlog)
    runtime.on_scrape(refresh_gauge)

    app = FastAPI(
        title="Keymoment survey",
        version="1.0",
        description="Bilingual (zh-CN / en) satisfaction surveys — moment of truth, NPS, CSAT, stars and free "
        "text. Every answered rating becomes a feedback.received.v1 event; personal links are answered once.",
    )
    install(app, runtime, context=ctx, limits={
        "/s/{survey_id}/responses": public.MAX_BODY_BYTES,
        "/v1/surveys": admin.MAX_SURVEY_BYTES,
    })
    app.include_router(public.router)
    app.include_router(admin.router)
    return app
