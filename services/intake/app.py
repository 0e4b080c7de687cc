"""Intake: every channel's feedback in, onto ``feedback.received.v1``."""

import logging
from functools import partial
from pathlib import Path

from fastapi import FastAPI

from services.intake import handlers, privacy, repository
from services.intake.api import email as email_api
from services.intake.api import feedback, kiosk, suggestion_box
from services.intake.api.errors import install_error_handlers
from services.intake.api.hot_path import PATH, FeedbackHotPath
from services.intake.api.middleware import KeyCors
from services.intake.email.smtp import install_email
from services.intake.keys import ANY, KeyStore, hash_key, split_key
from services.intake.service import Context, FeedbackSink
from services.intake.settings import IntakeSettings
from services.intake.suggestion_box import MAX_FILE_BYTES as SUGGESTION_BOX_MAX_BYTES
from shared.contracts import FeedbackIn
from shared.events import ERASURE_REQUESTED, FEEDBACK_RECEIVED
from shared.http import RouteLimit
from shared.privacy.runtime import use_erasure
from shared.runtime import Readiness, ServiceRuntime, install

# Every router of the service; channel routes are appended here.
ROUTERS = [feedback.router, email_api.router, suggestion_box.router, kiosk.router]

DESCRIPTION = """Submit customer feedback from any channel.

**Authentication:** every request carries `X-API-Key` (one key per source, e.g. `kiosk-store-12`, created with
`keymoment keys create`). A key is limited to its channels (403 otherwise), to its browser origins (CORS) and
to its rate (429 with `Retry-After`).

**Durability:** a `202` means the feedback is durable (acknowledged by Kafka or committed to intake's outbox)
and reaches every consumer exactly once in effect. When nothing can store it the answer is `503` with
`Retry-After`, never a 2xx.

**Retries:** send an `Idempotency-Key` (header, or `idempotency_key` per batch item): a retry returns the same
id and causes no second event.

**Errors** always look like `{"detail": "...", "errors": [{"path": "rating.value", "message": "...",
"type": "..."}]}`.
"""


# aiokafka's producer logs whole message values at DEBUG: feedback text, emails and
# phone numbers must never reach the logs, whatever LOG_LEVEL says.
_QUIET_LOGGERS = ("aiokafka.producer", "aiokafka.conn")


def create_app(settings: IntakeSettings, *, hot_path: bool = True) -> FastAPI:
    """The intake app. ``hot_path=False`` leaves ``POST /v1/feedback`` to its FastAPI
    route (tests use it to prove both answer alike)."""
    runtime = ServiceRuntime(settings, migrations=Path(__file__).parent / "migrations", produces=[FEEDBACK_RECEIVED],
                             readiness=Readiness.WRITE_PATH)
    ctx = Context(
        settings=settings,
        keys=KeyStore(ttl=settings.intake_key_cache_ttl_seconds),
        sink=FeedbackSink(publish=runtime.publish_durably, topic=settings.topic(FEEDBACK_RECEIVED.topic),
                          privacy_key=settings.privacy_key()),
        clock=runtime.clock,
    )
    use_erasure(runtime)
    runtime.consume(ERASURE_REQUESTED, partial(handlers.on_erasure_requested, ctx))
    app = FastAPI(title="Keymoment intake", version="1.0", description=DESCRIPTION)
    for router in ROUTERS:
        app.include_router(router)
    feedback.document_models(app, FeedbackIn)
    if hot_path:  # added first: the innermost middleware, inside metrics, request limits and CORS
        documented = next(r for r in feedback.router.routes if r.path == PATH and "POST" in r.methods)
        app.add_middleware(FeedbackHotPath, context=ctx, route=documented)
    install(app, runtime, context=ctx, limits={
        "/v1/feedback": settings.intake_max_body_bytes,
        # Authenticated before its body is read: the route bounds what it parses itself.
        "/v1/feedback:batch": RouteLimit(settings.intake_max_batch_bytes, checks_json=True),
        "/v1/email": settings.intake_email_max_bytes,
        "/v1/suggestion-box/import": SUGGESTION_BOX_MAX_BYTES + 64 * 1024,  # + multipart framing
    }, problem=lambda _, detail: {"detail": detail, "errors": []})
    install_error_handlers(app)
    app.add_middleware(KeyCors, origins=lambda: ctx.keys.browser_origins)

    async def start_intake(rt: ServiceRuntime) -> None:
        for name in _QUIET_LOGGERS:
            logging.getLogger(name).setLevel(max(logging.INFO, logging.getLogger(name).getEffectiveLevel()))
        rt.publisher.configure(
            send_timeout=settings.intake_publish_timeout_seconds,
            topic_partitions=settings.kafka_topic_partitions,
            replication_factor=settings.kafka_replication_factor,
        )
        if settings.dev_api_key is not None:
            dev_key = settings.dev_api_key.get_secret_value()
            key_id = split_key(dev_key)
            if key_id is None:
                raise ValueError("INTAKE_DEV_API_KEY must look like km_<id>_<secret>, e.g. km_dev_...")
            await repository.upsert_key(
                rt.pool, key_id=key_id, name="dev", secret_sha256=hash_key(dev_key), channels=[ANY], origins=[ANY]
            )
        await ctx.keys.open(rt.pool)
        rt.spawn(ctx.keys.watch(), "intake-api-keys")
        await privacy.pseudonymise_senders(rt.pool, settings.privacy_key())  # upgrade: before the listener starts

    async def keys_ready() -> str | None:
        return None if ctx.keys.listening.is_set() else "api keys not loaded"

    runtime.on_start(start_intake)
    runtime.readiness_check(keys_ready)
    install_email(runtime, settings)
    return app
