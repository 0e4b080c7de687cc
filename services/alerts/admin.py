"""Administration: silences (Alertmanager-style mutes), manager API tokens, and the gauge of
open alerts. The writing use cases flush their unit of work; the caller commits.

Who may do what (issue 14): an admin anything; a manager silences only alerts of their teams
(a ``team`` matcher naming only those; a silence of every team is an admin's), expires only the
silences they made, and never mutes a -3 alert's escalation beyond level 1 (only an admin's
silence with ``include_escalations`` does). Every silence is capped at
``ALERTS_SILENCE_MAX_DAYS`` and keeps an audit trail.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from typing import Any

from services.alerts.context import Actor, Context
from services.alerts.domain import Forbidden, InvalidSilence, ManagerToken
from services.alerts.silences import Silence, SilenceEvent
from services.alerts.links import MANAGER_TOKEN
from services.alerts.ports import Queries
from services.alerts.unit_of_work import UnitOfWork

logger = logging.getLogger(__name__)


class UnknownTeams(ValueError):
    """Teams the routes file does not have (HTTP 422)."""


def _matcher_values(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value or []]


def check_silence_scope(actor: Actor, matchers: dict[str, Any], *, include_escalations: bool) -> None:
    """:class:`Forbidden` unless ``actor`` may make a silence of these matchers."""
    if actor.admin:
        return
    if include_escalations:
        raise Forbidden("only an admin's silence may mute the escalation of a -3 alert beyond level 1")
    teams = _matcher_values(matchers.get("team"))
    if not teams:
        raise Forbidden("a silence without a team matcher mutes every team's alerts: an admin's to make; "
                        "name your team(s) in matchers.team")
    outside = [t for t in teams if t not in actor.teams]
    if outside:
        mine = ", ".join(sorted(actor.teams)) or "none"
        raise Forbidden(f"{actor.name} may silence only alerts of their teams ({mine}), not {', '.join(outside)}")


async def create_silence(uow: UnitOfWork, ctx: Context, *, matchers: dict[str, Any], starts_at: datetime | None,
                         ends_at: datetime, actor: Actor, comment: str,
                         include_escalations: bool = False) -> Silence:
    """Mute notifications of matching alerts from ``starts_at`` (default: now) until ``ends_at``,
    at most ``ALERTS_SILENCE_MAX_DAYS`` from its start (or from now, if it started before)."""
    now = ctx.clock.now()
    start = starts_at or now
    if ends_at <= now:
        raise InvalidSilence("ends_at is in the past")
    if ends_at <= start:
        raise InvalidSilence("ends_at must be after starts_at")
    cap = ctx.settings.alerts_silence_max_days
    if ends_at - max(start, now) > timedelta(days=cap):
        raise InvalidSilence(f"a silence mutes at most {cap} days (ALERTS_SILENCE_MAX_DAYS) from its start")
    check_silence_scope(actor, matchers, include_escalations=include_escalations)
    silence = Silence(silence_id=str(uuid.uuid4()), matchers=matchers, starts_at=start, ends_at=ends_at,
                      created_by=actor.name, comment=comment, created_at=now, include_escalations=include_escalations)
    uow.save_silence(silence)
    uow.add_silence_event(SilenceEvent(silence.silence_id, now, "created", actor.name, {
        "matchers": matchers, "starts_at": start.isoformat(), "ends_at": ends_at.isoformat(), "comment": comment,
        "include_escalations": include_escalations}))
    await uow.flush()
    logger.info("silence created", extra={"silence_id": silence.silence_id, "admin": actor.admin})
    return silence


async def expire_silence(uow: UnitOfWork, ctx: Context, silence_id: str, *, actor: Actor) -> Silence | None:
    """End a silence now (its creator or an admin); None if there is no such silence."""
    silence = await uow.silence(silence_id)
    if silence is None:
        return None
    if not (actor.admin or silence.created_by == actor.name):
        raise Forbidden(f"only its creator ({silence.created_by}) or an admin may expire silence {silence_id}")
    now = ctx.clock.now()
    if silence.ends_at > now:  # expiring an ended silence changes nothing, nor records anything
        silence.expire(now, by=actor.name)
        uow.save_silence(silence)
        uow.add_silence_event(SilenceEvent(silence_id, now, "expired", actor.name, {"ends_at": silence.ends_at.isoformat()}))
    await uow.flush()
    return silence


def manager_claims(record: ManagerToken) -> dict[str, Any]:
    """What a manager token carries: its id (revocation), the manager (``sub``) and the teams
    (``scp``: ``team:<name>``), the claims ``shared.auth.SignedTokens`` maps to a principal."""
    return {"t": record.token_id, "sub": record.email, "scp": sorted(f"team:{t}" for t in record.teams)}


async def issue_manager_token(uow: UnitOfWork, ctx: Context, *, email: str, actor: Actor,
                              ttl_days: int | None = None, teams: list[str] | None = None) -> tuple[str, ManagerToken]:
    """A manager's signed API token (expiring) for ``teams`` (default: the teams the routes file
    names them in) and its revocable record."""
    email = email.strip().lower()
    chosen = sorted(set(teams)) if teams is not None else ctx.router.teams_of(email)
    unknown = [t for t in chosen if ctx.router.team(t) is None]
    if unknown:
        raise UnknownTeams(f"unknown team(s) {', '.join(unknown)}; known: {', '.join(sorted(ctx.router.rules.teams))}")
    now = ctx.clock.now()
    record = ManagerToken(
        token_id=str(uuid.uuid4()), email=email, issued_by=actor.name, issued_at=now,
        expires_at=now + timedelta(days=ttl_days or ctx.settings.alerts_manager_token_ttl_days), teams=chosen,
    )
    uow.save_token(record)
    await uow.flush()
    token = ctx.signer.sign(MANAGER_TOKEN, manager_claims(record), expires_at=record.expires_at)
    logger.info("manager token issued", extra={"token_id": record.token_id, "teams": chosen})
    return token, record


async def revoke_manager_token(uow: UnitOfWork, ctx: Context, token_id: str, *, actor: Actor) -> bool:
    """Revoke a manager token (revoking twice keeps the first time); False if there is no such token."""
    record = await uow.token(token_id)
    if record is None:
        return False
    if record.revoked_at is None:
        record.revoked_at, record.revoked_by = ctx.clock.now(), actor.name
    uow.save_token(record)
    await uow.flush()
    return True


async def refresh_open_gauge(repo: Queries, ctx: Context) -> None:
    counts = await repo.open_counts()
    for severity in (-3, -2, -1):
        ctx.metrics.open.labels(str(severity)).set(counts.get(severity, 0))
