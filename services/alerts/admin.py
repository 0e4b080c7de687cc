"""Administration: silences (Alertmanager-style mutes), manager API tokens, and the gauge of
open alerts. The writing use cases flush their unit of work; the caller commits."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from services.alerts.context import Actor, Context
from services.alerts.domain import ManagerToken, Silence
from services.alerts.links import MANAGER
from services.alerts.ports import Queries
from services.alerts.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)


async def create_silence(uow: UnitOfWork, ctx: Context, *, matchers: dict[str, Any], starts_at: datetime | None,
                         ends_at: datetime, actor: Actor, comment: str) -> Silence:
    """Mute notifications of matching alerts from ``starts_at`` (default: now) until ``ends_at``."""
    now = ctx.clock.now()
    silence = Silence(silence_id=str(uuid.uuid4()), matchers=matchers, starts_at=starts_at or now, ends_at=ends_at,
                      created_by=actor.name, comment=comment, created_at=now)
    uow.save_silence(silence)
    await uow.flush()
    logger.info("silence created", extra={"silence_id": silence.silence_id, "admin": actor.admin})
    return silence


async def expire_silence(uow: UnitOfWork, ctx: Context, silence_id: str, *, actor: Actor) -> Silence | None:
    """End a silence now; None if there is no such silence."""
    silence = await uow.silence(silence_id)
    if silence is None:
        return None
    silence.expire(ctx.clock.now(), by=actor.name)
    uow.save_silence(silence)
    await uow.flush()
    return silence


async def issue_manager_token(uow: UnitOfWork, ctx: Context, *, email: str, actor: Actor,
                              ttl_days: int | None = None) -> tuple[str, ManagerToken]:
    """A manager's signed API token (expiring) and its revocable record."""
    now = ctx.clock.now()
    record = ManagerToken(
        token_id=str(uuid.uuid4()), email=email.lower(), issued_by=actor.name, issued_at=now,
        expires_at=now + timedelta(days=ttl_days or ctx.settings.alerts_manager_token_ttl_days),
    )
    uow.save_token(record)
    await uow.flush()
    token = ctx.signer.sign(MANAGER, {"t": record.token_id, "e": record.email}, expires_at=record.expires_at)
    return token, record


async def revoke_manager_token(uow: UnitOfWork, ctx: Context, token_id: str) -> bool:
    """Revoke a manager token (revoking twice keeps the first time); False if there is no such token."""
    record = await uow.token(token_id)
    if record is None:
        return False
    record.revoked_at = record.revoked_at or ctx.clock.now()
    uow.save_token(record)
    await uow.flush()
    return True


async def refresh_open_gauge(repo: Queries, ctx: Context) -> None:
    counts = await repo.open_counts()
    for severity in (-3, -2, -1):
        ctx.metrics.open.labels(str(severity)).set(counts.get(severity, 0))
