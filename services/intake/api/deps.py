"""FastAPI dependencies every intake route shares (the channels' routes too).

    @router.post("/v1/something")
    async def submit(principal: ApiKey, sink: Sink) -> ...:
        principal.require_channel(Channel.EMAIL)          # 403 unless allowed
        ids = await service.accept_many(items, principal=principal, idempotency_keys=keys, sink=sink)
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from services.intake.api.submit import authorize
from services.intake.keys import Principal
from services.intake.service import Context, FeedbackSink
from shared.runtime import app_context

api_key_header = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    description="Your source's API key (`km_<id>_<secret>`), created with `keymoment keys create`.",
)


# Async on purpose: FastAPI runs a sync dependency in its thread pool (a thread hop per request).
async def feedback_sink(request: Request) -> FeedbackSink:
    return request.app.state.context.sink


async def require_api_key(request: Request, key: Annotated[str | None, Security(api_key_header)]) -> Principal:
    """Authenticate the request (401), check its browser origin (403) and take one
    token from the key's rate limit (429): :func:`~services.intake.api.submit.authorize`."""
    return await authorize(request.app.state.context.keys, api_key=key, origin=request.headers.get("origin"))


ApiKey = Annotated[Principal, Depends(require_api_key)]
Ctx = Annotated[Context, Depends(app_context)]
Sink = Annotated[FeedbackSink, Depends(feedback_sink)]
