"""The recovery-loop API: alerts, silences and manager tokens (thin routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status
from pydantic import Field

from services.alerts import admin, queries, recovery, verdicts
from services.alerts.api.deps import AdminActor, Ctx, CurrentActor, Pool
from services.alerts.silences import Silence
from services.alerts.repository import reading, unit_of_work
from services.alerts.schemas import (
    AlertDetail,
    AlertList,
    AlertOut,
    Note,
    SilenceDetail,
    SilenceIn,
    SilenceOut,
    TokenIn,
    TokenOut,
    TransitionIn,
    VerdictIn,
    VerdictOut,
)
from shared.auth import AUTH_RESPONSES, UNREADABLE_BODY, Problem
from shared.contracts import AlertStatus, Key, QueryTime

router = APIRouter(prefix="/v1", responses={
    **AUTH_RESPONSES, **UNREADABLE_BODY,
    404: {"model": Problem, "description": "No such alert, silence or token."},
    409: {"description": "The alert is not in a state that allows this step (`detail`, `status`, `action`)."},
})


@router.get("/alerts", response_model=AlertList, tags=["alerts"], summary="List alerts, newest first")
async def list_alerts(
    pool: Pool, actor: CurrentActor,
    status_: Annotated[list[AlertStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[Annotated[int, Field(ge=-3, le=-1)]] | None,
                        Query(description="-3, -2, -1; repeat for several")] = None,
    location: Annotated[Key | None, Query(max_length=200)] = None,
    team: Annotated[Key | None, Query(max_length=200)] = None,
    since: Annotated[QueryTime | None, Query(description="Raised at or after (ISO 8601; UTC without offset)")] = None,
    before: Annotated[QueryTime | None, Query(description="Raised before: the next page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    async with reading(pool) as repo:
        alerts = await queries.list_alerts(
            repo, actor=actor, status=[s.value for s in status_] if status_ else None, severity=severity,
            location=location, team=team, since=since, before=before, limit=limit,
        )
    return AlertList(
        alerts=[AlertOut.of(a) for a in alerts],
        next_before=alerts[-1].raised_at if len(alerts) == limit else None,
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"],
            summary="One alert with its feedback, history of transitions and notifications")
async def get_alert(alert_id: str, pool: Pool, actor: CurrentActor) -> AlertDetail:
    async with reading(pool) as repo:
        detail = await queries.alert_detail(repo, alert_id, actor=actor)
    return AlertDetail.from_detail(detail)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"], summary="Acknowledge")
async def acknowledge(alert_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor, body: Note | None = None) -> AlertOut:
    async with unit_of_work(pool) as uow:
        alert = await recovery.acknowledge(uow, ctx, alert_id, actor=actor, note=body.note if body else None)
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/transition", response_model=AlertOut, tags=["alerts"],
             summary="Take the next MOT-loop step (explore, offer, action, confirm); 409 if out of order")
async def transition(alert_id: str, body: TransitionIn, ctx: Ctx, pool: Pool, actor: CurrentActor) -> AlertOut:
    async with unit_of_work(pool) as uow:
        alert = await recovery.transition(uow, ctx, alert_id, step=body.step, actor=actor, note=body.note)
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, tags=["alerts"],
             summary="Resolve; asks the customer a recovery survey when they have an email address")
async def resolve(alert_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor, body: Note | None = None) -> AlertOut:
    async with unit_of_work(pool) as uow:
        alert = await recovery.resolve(uow, ctx, alert_id, actor=actor, note=body.note if body else None)
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/verdict", response_model=VerdictOut, tags=["alerts"],
             summary="Judge a feedback of the alert: correct, or a false alarm (not negative); replaces the "
             "current verdict on it, changes nothing of the alert's state")
async def verdict(alert_id: str, body: VerdictIn, ctx: Ctx, pool: Pool, actor: CurrentActor) -> VerdictOut:
    async with unit_of_work(pool) as uow:
        made = await verdicts.record(uow, ctx, alert_id, verdict=body.verdict, actor=actor,
                                     feedback_id=body.feedback_id, note=body.note)
    return VerdictOut.of(made)


def _silence_out(silence: Silence, now: datetime) -> SilenceOut:
    return SilenceOut.of(silence, active=silence.active(now))


@router.post("/silences", response_model=SilenceOut, status_code=201, tags=["silences"],
             summary="Mute notifications of matching alerts until ends_at (alerts are still stored); a manager "
             "silences only their teams' alerts, 403 otherwise")
async def create_silence(body: SilenceIn, ctx: Ctx, pool: Pool, actor: CurrentActor) -> SilenceOut:
    async with unit_of_work(pool) as uow:
        silence = await admin.create_silence(
            uow, ctx, matchers=body.matchers.model_dump(exclude_none=True), starts_at=body.starts_at,
            ends_at=body.ends_at, actor=actor, comment=body.comment, include_escalations=body.include_escalations,
        )
    return _silence_out(silence, ctx.clock.now())


@router.get("/silences", response_model=list[SilenceOut], tags=["silences"],
            summary="Active and pending silences (a manager's: those that may mute their teams' alerts)")
async def list_silences(ctx: Ctx, pool: Pool, actor: CurrentActor, include_expired: bool = False) -> list[SilenceOut]:
    now = ctx.clock.now()
    async with reading(pool) as repo:
        silences = await queries.list_silences(repo, actor=actor, now=now, include_expired=include_expired)
    return [_silence_out(s, now) for s in silences]


@router.get("/silences/{silence_id}", response_model=SilenceDetail, tags=["silences"],
            summary="A silence with its audit trail")
async def get_silence(silence_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor) -> SilenceDetail:
    async with reading(pool) as repo:
        found = await queries.silence_detail(repo, silence_id, actor=actor)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id}")
    silence, events = found
    return SilenceDetail.of_trail(silence, events, active=silence.active(ctx.clock.now()))


@router.delete("/silences/{silence_id}", response_model=SilenceOut, tags=["silences"],
               summary="Expire a silence now (its creator or an admin)")
async def expire_silence(silence_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor) -> SilenceOut:
    async with unit_of_work(pool) as uow:
        silence = await admin.expire_silence(uow, ctx, silence_id, actor=actor)
    if silence is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id}")
    return _silence_out(silence, ctx.clock.now())


@router.post("/managers/{email}/tokens", response_model=TokenOut, status_code=201, tags=["managers"],
             summary="Issue a manager's API token for their teams (admin)")
async def issue_token(
    email: Annotated[str, Path(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)],
    ctx: Ctx, pool: Pool, actor: AdminActor, body: TokenIn | None = None,
) -> TokenOut:
    async with unit_of_work(pool) as uow:
        token, record = await admin.issue_manager_token(uow, ctx, email=email, actor=actor,
                                                        ttl_days=body.ttl_days if body else None,
                                                        teams=body.teams if body else None)
    return TokenOut(token=token, token_id=record.token_id, email=record.email, teams=record.teams,
                    expires_at=record.expires_at)


@router.delete("/managers/tokens/{token_id}", status_code=204, tags=["managers"], summary="Revoke a manager token")
async def revoke_token(token_id: str, ctx: Ctx, pool: Pool, actor: AdminActor) -> None:
    async with unit_of_work(pool) as uow:
        if not await admin.revoke_manager_token(uow, ctx, token_id, actor=actor):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id}")
