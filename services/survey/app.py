"""Survey: satisfaction surveys (MOT, NPS, CSAT, CES, stars, single choice, free text), invitations
with contact rules, unsubscribe; responses become feedback.

Consumes ``survey.requested.v1`` (alerts' recovery surveys) and ``feedback.received.v1`` (the
surveys' triggers); invitations are rendered and queued on the shared mail queue in the
transaction that decides them, and its sender mails them. Publishes through the outbox every
answered rating as ``feedback.received.v1`` (channel ``survey``), every whole response as
``survey.responded.v1`` and every invitation's funnel steps as ``survey.invitation.v1``.
"""

from collections.abc import Mapping
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI

from services.survey import bulk, handlers, invitations, inviting, privacy, repository, tokens
from services.survey.api import admin, invitations as invitations_api, public, unsubscribe
from services.survey.api.limits import ClientRateLimit
from services.survey.metrics import SurveyMetrics
from services.survey.service import Context, PublicLimits
from services.survey.settings import SurveySettings
from shared.auth import BearerAuth, SignedTokens, StaticToken
from shared.clock import Clock, SystemClock
from shared.events import ERASURE_REQUESTED, FEEDBACK_RECEIVED, SURVEY_INVITATION, SURVEY_REQUESTED, SURVEY_RESPONDED
from shared.mail.queue import ClaimedMail, Outcome
from shared.mail.runtime import use_mail_queue
from shared.privacy.runtime import use_erasure
from shared.runtime import ServiceRuntime, install


def create_app(settings: SurveySettings, *, clock: Clock | None = None) -> FastAPI:
    runtime = ServiceRuntime(
        settings, migrations=Path(__file__).parent / "migrations",
        produces=[FEEDBACK_RECEIVED, SURVEY_RESPONDED, SURVEY_INVITATION], clock=clock or SystemClock(),
    )

    async def mail_settled(conn: asyncpg.Connection, mail: ClaimedMail, outcome: Outcome) -> None:
        await inviting.on_mail_settled(ctx, conn, mail, outcome)

    mail = use_mail_queue(runtime, purposes=[invitations.PURPOSE], on_settled=mail_settled)
    metrics = SurveyMetrics(runtime.registry, mail.metrics)
    signer = settings.signer()  # LINK_SIGNING_KEY, and LINK_SIGNING_OLD_KEYS verify-only

    async def not_revoked(claims: Mapping[str, Any]) -> bool:
        return not await repository.token_revoked(runtime.pool, str(claims.get("t", "")))

    api_tokens = SignedTokens(signer, tokens.SURVEY_API_TOKEN, clock=runtime.clock, usable=not_revoked)
    ctx = Context(
        settings=settings,
        clock=runtime.clock,
        metrics=metrics,
        links=signer,
        auth=BearerAuth(StaticToken.admin(settings.admin_token), api_tokens),
        api_tokens=api_tokens,
        mail=mail,
        limits=PublicLimits.of(settings),
        definitions=repository.Definitions(),
    )
    runtime.consume(SURVEY_REQUESTED, partial(handlers.on_survey_requested, ctx))
    # Feedback is read only while some survey has a feedback trigger: none costs nothing.
    runtime.consume_batches(FEEDBACK_RECEIVED, partial(handlers.on_feedback_received, ctx),
                            wanted=repository.has_feedback_trigger)
    runtime.consume(ERASURE_REQUESTED, partial(handlers.on_erasure_requested, ctx))
    use_erasure(runtime)
    privacy.retain(runtime, settings)

    async def queue_backlog(rt: ServiceRuntime) -> None:
        await privacy.pseudonymise_backlog(rt.pool, settings.privacy_key())  # requests from before 0007/0008
        await invitations.queue_backlog(rt.pool, settings, signer, rt.clock)

    async def refresh_gauge() -> None:
        await invitations.refresh_gauge(runtime.pool, metrics)

    runtime.on_start(queue_backlog)
    runtime.on_scrape(refresh_gauge)

    app = FastAPI(
        title="Keymoment survey",
        version="1.0",
        description="Bilingual (zh-CN / en) satisfaction surveys — moment of truth, NPS, CSAT, CES, stars, single "
        "choice and free text — with invitations under contact rules (frequency, quiet hours, unsubscribe, "
        "suppression), versions and partial answers. Every answered rating becomes a feedback.received.v1 event, "
        "every response a survey.responded.v1; personal links are answered once.",
    )
    install(app, runtime, context=ctx, limits={
        "/s/{survey_id}/responses": public.MAX_BODY_BYTES,
        "/s/{survey_id}/draft": public.MAX_BODY_BYTES,
        "/u/{token}": unsubscribe.MAX_BODY_BYTES,
        "/v1/surveys": admin.MAX_SURVEY_BYTES,
        "/v1/surveys/{survey_id}": admin.MAX_SURVEY_BYTES,
        "/v1/invitations/bulk": bulk.MAX_BYTES,
    })
    # Outermost: a client over its rate is refused before its body is read.
    app.add_middleware(ClientRateLimit, limiter=ctx.limits.clients, metrics=metrics)
    app.include_router(public.router)
    app.include_router(unsubscribe.router)
    app.include_router(invitations_api.router)
    app.include_router(admin.router)
    return app
