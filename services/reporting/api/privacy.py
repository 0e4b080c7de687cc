"""POST/GET /v1/privacy/erasures: erase a customer everywhere (PIPL / GDPR), and see what was erased."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Response, status

from services.reporting import erasures
from services.reporting.api.deps import Ctx, Pool
from services.reporting.erasures import ErasureRecord
from services.reporting.schemas import ErasureIn, ErasureOut, ServiceErasure
from shared.auth import AUTH_RESPONSES, UNREADABLE_BODY, Problem, Principal, requires
from shared.events import ERASURE_REQUESTED

PRIVACY_ERASE = "privacy:erase"
"""The scope of the erasure API (the admin token holds every scope)."""

router = APIRouter(prefix="/v1/privacy", tags=["privacy"], responses=AUTH_RESPONSES)
Eraser = Annotated[Principal, Depends(requires(PRIVACY_ERASE))]


def _out(record: ErasureRecord) -> ErasureOut:
    return ErasureOut(
        id=record.erasure_id, status="done" if record.done else "pending", requested_at=record.requested_at,
        requested_by=record.requested_by, contacts=record.contacts,
        services={name: ServiceErasure(applied_at=r.applied_at, erased=r.erased) for name, r in record.services.items()},
        waiting_for=record.waiting_for,
    )


@router.post(
    "/erasures", status_code=status.HTTP_202_ACCEPTED, response_model=ErasureOut, responses=UNREADABLE_BODY,
    summary="Erase a customer: every service deletes or anonymises what it holds about them",
    description="Publishes `erasure.requested.v1` carrying the contacts' pseudonyms (HMAC-SHA256 under "
    "PRIVACY_HASH_KEY), never the contacts. Every service applies it once and reports what it erased; follow "
    "`Location` until `status` is `done`. Copies on Kafka expire with the topics' retention (7 days).",
)
async def request_erasure(body: ErasureIn, principal: Eraser, ctx: Ctx, pool: Pool, response: Response) -> ErasureOut:
    contacts = ([("email", e) for e in body.emails] + [("phone", p) for p in body.phones]
                + [("id", i) for i in body.customer_ids])
    settings = ctx.settings
    async with pool.acquire() as conn, conn.transaction():
        record = await erasures.request(
            conn, contacts=contacts, key=settings.privacy_key(), requested_by=principal.subject, now=ctx.clock.now(),
            topic=settings.topic(ERASURE_REQUESTED.topic), source=settings.event_source,
        )
    response.headers["Location"] = f"/v1/privacy/erasures/{record.erasure_id}"
    return _out(record)


@router.get("/erasures/{erasure_id}", response_model=ErasureOut, summary="An erasure and what each service erased",
            responses={404: {"model": Problem, "description": "No such erasure."}})
async def get_erasure(erasure_id: str, _: Eraser, pool: Pool) -> ErasureOut:
    record = await erasures.find(pool, erasure_id)
    if record is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no erasure {erasure_id!r}")
    return _out(record)
