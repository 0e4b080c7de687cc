"""Invitations for any survey (``invitations:write``) and visits for the visit triggers
(``visits:write``): thin routes over :mod:`services.survey.inviting`."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from services.survey import bulk, invitations, inviting, repository
from services.survey.api.deps import SURVEY_SCOPE, Ctx, Inviter, Pool, RowId, VisitReporter, check_survey
from services.survey.schemas import SLUG, BulkReport, InvitationIn, InvitationOut, RowResult, VisitIn
from shared.auth import AUTH_RESPONSES, UNREADABLE_BODY, Problem
from shared.tabular import error_message

router = APIRouter(tags=["invitations"], responses=AUTH_RESPONSES)
NO_SURVEY = {404: {"model": Problem, "description": "No such survey."}}

IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", min_length=1, max_length=200,
                                               description="The invitation's idempotency key (or `key` in the body).")]


async def _survey(pool: Pool, survey_id: str):  # noqa: ANN202 - (definition, version)
    found = await repository.current(pool, survey_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no survey {survey_id!r}")
    return found


@router.post("/v1/invitations", status_code=status.HTTP_202_ACCEPTED, response_model=InvitationOut,
             summary="Invite a customer to a survey (the contact rules decide: queued or skipped)",
             responses={**NO_SURVEY, **UNREADABLE_BODY, 409: {"model": Problem,
                                           "description": "The idempotency key names a different invitation."}})
async def create_invitation(body: InvitationIn, principal: Inviter, pool: Pool, ctx: Ctx,
                            idempotency_key: IdempotencyKey = None) -> JSONResponse:
    check_survey(principal, body.survey_id)
    survey, version = await _survey(pool, body.survey_id)
    ask = inviting.ask_from_api(body, survey, version, key=idempotency_key, requested_by=principal.subject,
                                now=ctx.clock.now())
    async with pool.acquire() as conn, conn.transaction():
        [invited] = await inviting.invite(ctx, conn, [ask])
    if invited.conflict:
        return JSONResponse({"detail": "this idempotency key was used for a different invitation",
                             "code": "idempotency_key_reused", "invitation_id": invited.invitation_id},
                            status_code=status.HTTP_409_CONFLICT)
    out = InvitationOut(invitation_id=invited.invitation_id, status=invited.status, reason=invited.reason,
                        send_at=invited.send_at)
    return JSONResponse(out.model_dump(mode="json", exclude_none=True), status_code=status.HTTP_202_ACCEPTED,
                        headers={"Idempotent-Replayed": "true"} if invited.replayed else None)


BULK_BODY = {
    "requestBody": {
        "required": True,
        "description": f"Up to {bulk.MAX_ROWS:,} invitations to one survey: NDJSON (an InvitationIn per line, "
                       "survey_id optional) or CSV with a header (email, customer_id, phone, name, time_zone, locale, "
                       "touchpoint, location, key, context.<name>; UTF-8 or GBK).",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}},
                    "text/csv": {"schema": {"type": "string"}}},
    }
}


@router.post("/v1/invitations/bulk", status_code=status.HTTP_202_ACCEPTED, response_model=BulkReport,
             openapi_extra=BULK_BODY, responses=NO_SURVEY, summary=f"Invite up to {bulk.MAX_ROWS:,} customers at once (NDJSON or CSV); "
             "a report per row")
async def bulk_invitations(request: Request, principal: Inviter, pool: Pool, ctx: Ctx,
                           survey_id: str = Query(pattern=SLUG)) -> BulkReport:
    check_survey(principal, survey_id)  # credentials and scope before the body is read
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/csv", "application/csv", "application/x-ndjson", "application/ndjson",
                            "application/jsonl", "application/json-seq"):
        raise HTTPException(status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, "send text/csv or application/x-ndjson")
    survey, version = await _survey(pool, survey_id)
    body = await request.body()  # at most bulk.MAX_BYTES: the service's request limits refuse more (413)
    try:
        rows = bulk.parse(body, content_type, survey_id)
    except bulk.BulkError as exc:
        raise HTTPException(422, str(exc)) from None

    now = ctx.clock.now()
    results: dict[int, RowResult] = {}
    asks: list[tuple[int, inviting.Ask]] = []
    for row in rows:
        if row.data is None:
            results[row.number] = RowResult(row=row.number, status="invalid", errors=[row.error or "unreadable"])
            continue
        try:
            item = InvitationIn.model_validate(row.data)
        except ValidationError as exc:
            results[row.number] = RowResult(row=row.number, status="invalid",
                                            errors=[error_message(e) for e in exc.errors(include_url=False)])
            continue
        asks.append((row.number, inviting.ask_from_api(item, survey, version, key=None,
                                                       requested_by=principal.subject, now=now)))
    for start in range(0, len(asks), inviting.CHUNK):
        chunk = asks[start:start + inviting.CHUNK]
        async with pool.acquire() as conn, conn.transaction():
            decided = await inviting.invite(ctx, conn, [a for _, a in chunk])
        for (number, _), invited in zip(chunk, decided, strict=True):
            if invited.conflict:
                results[number] = RowResult(row=number, invitation_id=invited.invitation_id, status="invalid",
                                            errors=["key: this idempotency key was used for a different invitation"])
            else:
                results[number] = RowResult(row=number, invitation_id=invited.invitation_id, status=invited.status,
                                            reason=invited.reason, send_at=invited.send_at)
    ordered = [results[n] for n in sorted(results)]
    statuses = Counter(r.status for r in ordered)
    return BulkReport(
        survey_id=survey_id, rows=len(ordered), queued=statuses["queued"], skipped=statuses["skipped"],
        invalid=statuses["invalid"], skipped_by_reason=dict(Counter(r.reason.value for r in ordered if r.reason)),
        results=ordered,
    )


class InvitationState(BaseModel):
    invitation_id: str
    survey_id: str
    survey_version: int | None
    kind: str
    status: str
    reason: str | None
    delivery: str  # the mail's state: pending, sending, sent, uncertain, failed; unsendable, skipped, withdrawn
    send_at: datetime | None
    steps: dict[str, datetime]


@router.get("/v1/invitations/{invitation_id}", summary="An invitation: its decision, delivery and funnel steps",
            responses={404: {"model": Problem, "description": "No such invitation."}})
async def get_invitation(invitation_id: RowId, principal: Inviter, pool: Pool) -> InvitationState:
    async with pool.acquire() as conn:
        request = await repository.get_request(conn, invitation_id)
        if request is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no invitation {invitation_id!r}")
        check_survey(principal, request.survey_id)
        delivery = await invitations.delivery(conn, invitation_id)
        steps = await repository.steps(conn, invitation_id)
    return InvitationState(
        invitation_id=invitation_id, survey_id=request.survey_id, survey_version=request.survey_version,
        kind=request.kind, status=request.status, reason=request.skip_reason, delivery=delivery.state,
        send_at=request.send_at, steps=steps,
    )


class VisitOut(BaseModel):
    survey_id: str
    invitation_id: str
    status: str
    reason: str | None = None
    send_at: datetime | None = None


@router.post("/v1/visits", status_code=status.HTTP_202_ACCEPTED, tags=["visits"], responses=UNREADABLE_BODY,
             summary="Report a customer's visit: every survey whose visit trigger matches invites them")
async def report_visit(body: VisitIn, principal: VisitReporter, pool: Pool, ctx: Ctx) -> list[VisitOut]:
    async with pool.acquire() as conn, conn.transaction():
        decided = await inviting.on_visit(ctx, conn, body, requested_by=principal.subject,
                                          only=frozenset() if principal.admin else principal.values(SURVEY_SCOPE))
    return [VisitOut(survey_id=survey_id, invitation_id=i.invitation_id, status=i.status, reason=i.reason,
                     send_at=i.send_at) for survey_id, i in decided]
