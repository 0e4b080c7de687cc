"""The recovery-loop API: alerts, silences and manager tokens (thin routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query, status

from services.alerts import repository as repo
from services.alerts import service
from services.alerts.api.deps import AdminActor, Ctx, CurrentActor, Pool
from services.alerts.domain import AlertNotFound
from services.alerts.schemas import (
    AlertDetail,
    AlertList,
    AlertOut,
    Note,
    SilenceIn,
    SilenceOut,
    TokenIn,
    TokenOut,
    TransitionIn,
)
from shared.contracts import AlertStatus

router = APIRouter(prefix="/v1")


@router.get("/alerts", response_model=AlertList, tags=["alerts"], summary="List alerts, newest first")
async def list_alerts(
    ctx: Ctx, pool: Pool, actor: CurrentActor,
    status_: Annotated[list[AlertStatus] | None, Query(alias="status")] = None,
    severity: Annotated[list[int] | None, Query(description="-3, -2, -1; repeat for several")] = None,
    location: str | None = None,
    team: str | None = None,
    since: Annotated[datetime | None, Query(description="Raised at or after (ISO 8601)")] = None,
    before: Annotated[datetime | None, Query(description="Raised before: the next page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertList:
    async with pool.acquire() as conn:
        alerts = await repo.list_alerts(
            conn, status=[s.value for s in status_] if status_ else None, severity=severity, location=location,
            team=team, since=since, recipient=None if actor.admin else actor.name, limit=limit, before=before,
        )
    return AlertList(
        alerts=[AlertOut.of(a) for a in alerts],
        next_before=alerts[-1].raised_at if len(alerts) == limit else None,
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"],
            summary="One alert with its feedback, history of transitions and notifications")
async def get_alert(alert_id: str, pool: Pool, actor: CurrentActor) -> AlertDetail:
    async with pool.acquire() as conn:
        alert = await repo.get_alert(conn, alert_id)
        if alert is None:
            raise AlertNotFound(alert_id)
        if not actor.may_act_on(alert):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "not on this alert's team")
        feedback = await repo.alert_feedback(conn, alert_id)
        history = await repo.alert_events(conn, alert_id)
        notifications = await repo.alert_notifications(conn, alert_id)
    base = AlertOut.of(alert).model_dump()
    return AlertDetail(**base, recipients=alert.recipients, silence_id=alert.silence_id, feedback=feedback,
                       history=history, notifications=notifications)


@router.post("/alerts/{alert_id}/ack", response_model=AlertOut, tags=["alerts"], summary="Acknowledge")
async def acknowledge(alert_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor, body: Note | None = None) -> AlertOut:
    async with pool.acquire() as conn, conn.transaction():
        alert = await service.acknowledge(conn, ctx, alert_id, actor=actor, note=body.note if body else None)
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/transition", response_model=AlertOut, tags=["alerts"],
             summary="Take the next MOT-loop step (explore, offer, action, confirm); 409 if out of order")
async def transition(alert_id: str, body: TransitionIn, ctx: Ctx, pool: Pool, actor: CurrentActor) -> AlertOut:
    async with pool.acquire() as conn, conn.transaction():
        alert = await service.transition(conn, ctx, alert_id, step=body.step, actor=actor, note=body.note)
    return AlertOut.of(alert)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, tags=["alerts"],
             summary="Resolve; asks the customer a recovery survey when they have an email address")
async def resolve(alert_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor, body: Note | None = None) -> AlertOut:
    async with pool.acquire() as conn, conn.transaction():
        alert = await service.resolve(conn, ctx, alert_id, actor=actor, note=body.note if body else None)
    return AlertOut.of(alert)


def _silence_out(row: dict, now: datetime) -> SilenceOut:
    return SilenceOut(**row, active=row["starts_at"] <= now < row["ends_at"])


@router.post("/silences", response_model=SilenceOut, status_code=201, tags=["silences"],
             summary="Mute notifications of matching alerts until ends_at (alerts are still stored)")
async def create_silence(body: SilenceIn, ctx: Ctx, pool: Pool, actor: CurrentActor) -> SilenceOut:
    if body.ends_at <= ctx.clock.now():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, "ends_at is in the past")
    async with pool.acquire() as conn:
        row = await service.create_silence(
            conn, ctx, matchers=body.matchers.model_dump(exclude_none=True), starts_at=body.starts_at,
            ends_at=body.ends_at, actor=actor, comment=body.comment,
        )
    return _silence_out(row, ctx.clock.now())


@router.get("/silences", response_model=list[SilenceOut], tags=["silences"], summary="Active and pending silences")
async def list_silences(ctx: Ctx, pool: Pool, _: CurrentActor, include_expired: bool = False) -> list[SilenceOut]:
    now = ctx.clock.now()
    async with pool.acquire() as conn:
        rows = await repo.list_silences(conn, now=now, include_expired=include_expired)
    return [_silence_out(r, now) for r in rows]


@router.delete("/silences/{silence_id}", response_model=SilenceOut, tags=["silences"], summary="Expire a silence now")
async def expire_silence(silence_id: str, ctx: Ctx, pool: Pool, actor: CurrentActor) -> SilenceOut:
    now = ctx.clock.now()
    async with pool.acquire() as conn:
        row = await repo.expire_silence(conn, silence_id, now=now, by=actor.name)
    if row is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no silence {silence_id}")
    return _silence_out(row, now)


@router.post("/managers/{email}/tokens", response_model=TokenOut, status_code=201, tags=["managers"],
             summary="Issue a manager's API token (admin)")
async def issue_token(
    email: Annotated[str, Path(pattern=r"^[^@\s]+@[^@\s]+$", max_length=320)],
    ctx: Ctx, pool: Pool, actor: AdminActor, body: TokenIn | None = None,
) -> TokenOut:
    async with pool.acquire() as conn:
        issued = await service.issue_manager_token(conn, ctx, email=email, actor=actor,
                                                   ttl_days=body.ttl_days if body else None)
    return TokenOut(**issued)


@router.delete("/managers/tokens/{token_id}", status_code=204, tags=["managers"], summary="Revoke a manager token")
async def revoke_token(token_id: str, ctx: Ctx, pool: Pool, _: AdminActor) -> None:
    async with pool.acquire() as conn:
        if not await repo.revoke_token(conn, token_id, now=ctx.clock.now()):
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token {token_id}")
