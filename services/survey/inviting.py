"""Invitations: the contact rules, the record, the mail, the unsubscribe and the funnel.

Every way of inviting goes through :func:`invite`, inside the caller's transaction:
``POST /v1/invitations`` (one or a bulk upload), a trigger (a matching feedback or
visit), and alerts' ``survey.requested.v1`` (a recovery survey). For a batch of asks:

1. each customer's *contact keys* are computed: pseudonyms (``shared.privacy``) of
   their id, email address and phone — never a contact in clear;
2. those customers are locked (transaction advisory locks, in one order), so two
   invitations for one customer, in this request or a concurrent one, are decided
   one after the other;
3. an ask whose invitation exists already (the same idempotency key, a redelivered
   request) gets that invitation's answer again, decided nothing anew;
4. the contact rules (:mod:`services.survey.rules`) decide, each ask seeing the ones
   queued before it;
5. the invitations are recorded, the queued ones' mails queued (deferred to the end
   of quiet hours or a trigger's delay), and a ``survey.invitation.v1`` step
   (``invited`` or ``skipped`` with its reason) written to the outbox per invitation.

The funnel's later steps (delivered, opened, started, completed, unsubscribed) are
recorded once each by :func:`funnel_step`, in the transaction of what caused them.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from services.survey import invitations, repository, rules, suppressions
from services.survey.funnel import NAMESPACE, step_event
from services.survey.pages import lang_order
from services.survey.repository import NewInvitation, SurveyRequest
from services.survey.schemas import InvitationIn, SurveyDefinition, Trigger, VisitIn
from services.survey.service import Context
from shared.contracts import Channel, Customer, FeedbackReceived, FunnelStep, SurveyRequested
from shared.errors import PermanentError
from shared.mail import queue
from shared.mail.queue import ClaimedMail, OutgoingMail
from shared.mail.queue import Outcome as MailOutcome
from shared.outbox import enqueue as enqueue_events
from shared.privacy import pseudonym

logger = logging.getLogger(__name__)

CHUNK = 500
"""Asks decided per transaction by the bulk upload (advisory locks held at once stay bounded)."""


def invitation_id(survey_id: str, key: str) -> str:
    """The invitation an idempotency key names: the same key for the same survey, the same id."""
    return str(uuid.uuid5(NAMESPACE, f"{survey_id}\x00{key}"))


def request_hash(item: InvitationIn) -> str:
    """What an idempotency key must keep naming: the invitation's content (its key aside)."""
    body = item.model_dump(mode="json", exclude={"key"}, exclude_none=True)
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class Ask:
    """One invitation asked for."""

    survey: SurveyDefinition
    version: int
    request_id: str
    kind: str  # api | trigger | recovery
    customer: Customer
    requested_at: datetime
    time_zone: str | None = None
    language: str | None = None
    location: str | None = None
    touchpoint: str | None = None
    context: dict[str, Any] = field(default_factory=dict)
    alert_id: str | None = None  # a recovery survey: bypasses the frequency rules
    client_key: str | None = None
    request_hash: str | None = None
    requested_by: str | None = None
    not_before: datetime | None = None  # a trigger's delay


@dataclass(frozen=True)
class Invited:
    """What became of an ask."""

    invitation_id: str
    status: str  # queued | skipped
    reason: str | None = None
    send_at: datetime | None = None
    replayed: bool = False  # an existing invitation answered again
    conflict: bool = False  # its idempotency key names a different invitation


def contact_keys(key: bytes, customer: Customer, address: str | None) -> list[str]:
    keys = []
    if customer.id:
        keys.append(pseudonym(key, "id", customer.id))
    if address or customer.email:
        keys.append(suppressions.address_hash(key, address or customer.email))
    if customer.phone:
        keys.append(pseudonym(key, "phone", customer.phone))
    return keys


async def invite(ctx: Context, conn: asyncpg.Connection, asks: Sequence[Ask]) -> list[Invited]:
    """Decide, record and queue ``asks`` in the caller's transaction (see the module docstring);
    one answer per ask, in order."""
    if not asks:
        return []
    now = ctx.clock.now()
    key = ctx.settings.privacy_key()
    addresses = [invitations.usable_address(a.customer) for a in asks]
    keys = [contact_keys(key, a.customer, addr) for a, addr in zip(asks, addresses, strict=True)]
    await repository.lock_contacts(conn, [k for ks in keys for k in ks])

    existing = await repository.get_requests(conn, [a.request_id for a in asks])
    listed = await suppressions.suppressed(conn, key, sorted({a for a in addresses if a}))
    rules_of: dict[str, rules.Rules] = {}
    for ask in asks:
        if ask.survey.id not in rules_of:
            rules_of[ask.survey.id] = rules.effective(ask.survey.contact_rules, ctx.settings)
    lookback = max(r.lookback for r in rules_of.values())
    history: dict[str, list[rules.Contact]] = {}  # per contact key; one Contact object per invitation
    earlier_contacts: dict[str, rules.Contact] = {}
    for k, request_id, survey_id, at in await repository.contacts(conn, [k for ks in keys for k in ks],
                                                                  since=now - lookback):
        history.setdefault(k, []).append(earlier_contacts.setdefault(request_id, rules.Contact(survey_id, at)))

    answers: list[Invited] = []
    rows: list[NewInvitation] = []
    mails: list[OutgoingMail] = []
    forms: dict[tuple[str, int, tuple[str, str]], invitations.Template] = {}  # rendered once per batch
    seen: dict[str, Invited] = {}
    for ask, address, ks in zip(asks, addresses, keys, strict=True):
        earlier = existing.get(ask.request_id)
        if earlier is not None or ask.request_id in seen:
            answers.append(_replay(ask, earlier) if earlier else seen[ask.request_id])
            continue
        customer_history = {id(c): c for k in ks for c in history.get(k, ())}
        decision = rules.decide(
            rules_of[ask.survey.id], now=now, survey_id=ask.survey.id, has_address=address is not None,
            suppression=listed.get(address) if address else None, recovery=ask.alert_id is not None,
            contacts=list(customer_history.values()),
            time_zone=ZoneInfo(ask.time_zone) if ask.time_zone else None, not_before=ask.not_before,
        )
        mail_id = None
        if decision.status == "queued":
            contact = rules.Contact(ask.survey.id, now)
            for k in ks:
                history.setdefault(k, []).append(contact)
            form_key = (ask.survey.id, ask.version, lang_order(ask.language))
            if form_key not in forms:
                forms[form_key] = invitations.template(ask.survey, ask.language,
                                                       ttl_days=ctx.settings.survey_link_ttl_days)
            mail = invitations.invitation(
                ctx.settings, ctx.links, request_id=ask.request_id, customer=ask.customer, address=address,
                language=ask.language, survey=ask.survey, now=now, send_at=decision.send_at, form=forms[form_key],
            )
            mails.append(mail)
            mail_id = mail.mail_id
        reason = decision.reason.value if decision.reason else None
        rows.append(NewInvitation(
            request_id=ask.request_id, survey_id=ask.survey.id, survey_version=ask.version, kind=ask.kind,
            alert_id=ask.alert_id, customer=ask.customer, language=ask.language,
            location=ask.location or ask.survey.location, touchpoint=ask.touchpoint or ask.survey.touchpoint,
            requested_at=ask.requested_at, decided_at=now, status=decision.status, skip_reason=reason,
            mail_id=mail_id, send_at=decision.send_at, contact_keys=ks, context=ask.context, time_zone=ask.time_zone,
            client_key=ask.client_key, request_hash=ask.request_hash, requested_by=ask.requested_by,
        ))
        seen[ask.request_id] = Invited(ask.request_id, decision.status, reason, decision.send_at)
        answers.append(seen[ask.request_id])

    recorded = await repository.add_invitations(conn, rows)
    if len(recorded) != len(rows):  # an idempotency key raced in between: never happens under the locks
        raise RuntimeError(f"{len(rows) - len(recorded)} invitation(s) recorded concurrently")
    await queue.enqueue(conn, mails, now=now)
    await enqueue_events(conn, [
        step_event(ctx.settings, row, FunnelStep.INVITED if row.status == "queued" else FunnelStep.SKIPPED, at=now,
                   reason=row.skip_reason)
        for row in rows
    ])
    for row in rows:
        ctx.metrics.invitations_decided.labels(row.survey_id, row.status, row.skip_reason or "").inc()
    return answers


def _replay(ask: Ask, earlier: SurveyRequest) -> Invited:
    conflict = (ask.request_hash is not None and earlier.request_hash is not None
                and ask.request_hash != earlier.request_hash) or earlier.survey_id != ask.survey.id
    return Invited(earlier.request_id, earlier.status, earlier.skip_reason, earlier.send_at, replayed=True,
                   conflict=conflict)


def ask_from_api(item: InvitationIn, survey: SurveyDefinition, version: int, *, key: str | None,
                 requested_by: str, now: datetime) -> Ask:
    """An API invitation (one, or a bulk row)."""
    key = item.key or key
    # validated already (InvitationCustomer is a Customer with a time zone): built, not validated again
    customer = Customer.model_construct(**item.customer.model_dump(exclude={"time_zone"}, exclude_none=True))
    return Ask(
        survey=survey, version=version, request_id=invitation_id(survey.id, key) if key else str(uuid.uuid4()),
        kind="api", customer=customer, requested_at=now, time_zone=item.customer.time_zone, language=item.locale,
        location=item.location, touchpoint=item.touchpoint, context=item.context, client_key=key,
        request_hash=request_hash(item), requested_by=requested_by,
    )


# --- alerts' recovery surveys -----------------------------------------------------------------
async def record_request(ctx: Context, conn: asyncpg.Connection, req: SurveyRequested) -> Invited:
    """A ``survey.requested.v1``: ``kind`` names the survey to ask (``recovery`` is built in). A
    kind without a survey can never succeed: it is dead-lettered (replayable once the survey
    exists). A recovery survey bypasses the frequency rules only."""
    found = await repository.current(conn, req.kind)
    if found is None:
        raise PermanentError(f"no survey {req.kind!r} for survey request kind {req.kind!r}")
    survey, version = found
    [invited] = await invite(ctx, conn, [Ask(
        survey=survey, version=version, request_id=req.request_id, kind="recovery" if req.alert_id else "api",
        customer=req.customer, requested_at=req.requested_at, language=req.language, location=req.location,
        touchpoint=req.touchpoint, alert_id=req.alert_id, requested_by="alerts",
    )])
    logger.info(
        "survey request already recorded" if invited.replayed else "survey request recorded",
        extra={"request_id": req.request_id, "survey_id": survey.id, "alert_id": req.alert_id,
               "invitation": invited.status, "reason": invited.reason},
    )
    return invited


# --- triggers ---------------------------------------------------------------------------------
def _matches(trigger: Trigger, on: str, *, channel: str | None, touchpoint: str | None, location: str | None) -> bool:
    return (trigger.on == on
            and (not trigger.channels or channel in trigger.channels)
            and (not trigger.touchpoints or touchpoint in trigger.touchpoints)
            and (not trigger.locations or location in trigger.locations))


async def on_feedback(ctx: Context, conn: asyncpg.Connection, feedback: Sequence[FeedbackReceived], *,
                      keep: Callable[[list[FeedbackReceived]], Awaitable[list[FeedbackReceived]]] | None = None,
                      ) -> list[Invited]:
    """Invite after feedback that a survey's trigger names. Only feedback naming a customer's
    email can invite (there is nobody to write to otherwise), and never a survey answer. ``keep``
    filters the feedback that would invite (the erasure check), asked only when some does."""
    candidates = [fb for fb in feedback if fb.channel != Channel.SURVEY and fb.customer and fb.customer.email]
    if not candidates:
        return []
    surveys = await repository.triggered_surveys(conn, parsed=ctx.definitions)
    matched: list[tuple[FeedbackReceived, SurveyDefinition, int, Trigger]] = []
    for fb in candidates:
        for survey, version in surveys:
            trigger = next((t for t in survey.triggers if _matches(
                t, "feedback", channel=fb.channel.value, touchpoint=fb.touchpoint, location=fb.location)), None)
            if trigger is not None:
                matched.append((fb, survey, version, trigger))
    if matched and keep is not None:
        kept = {id(fb) for fb in await keep(list({id(fb): fb for fb, *_ in matched}.values()))}
        matched = [m for m in matched if id(m[0]) in kept]
    asks = []
    for fb, survey, version, trigger in matched:
        happened = fb.occurred_at or fb.received_at
        key = f"feedback:{fb.id}"
        asks.append(Ask(
            survey=survey, version=version, request_id=invitation_id(survey.id, key), kind="trigger",
            customer=fb.customer, requested_at=happened, language=fb.language, location=fb.location,
            touchpoint=fb.touchpoint, context={"feedback_id": fb.id, "channel": fb.channel.value}, client_key=key,
            requested_by="trigger:feedback", not_before=happened + timedelta(minutes=trigger.delay_minutes),
        ))
    return await invite(ctx, conn, asks)


async def on_visit(ctx: Context, conn: asyncpg.Connection, visit: VisitIn, *, requested_by: str,
                   only: frozenset[str] = frozenset()) -> list[tuple[str, Invited]]:
    """Invite to every survey whose visit trigger matches (of ``only``, when given); ``(survey id,
    what became of it)``."""
    now = ctx.clock.now()
    happened = visit.occurred_at or now
    customer = Customer.model_validate(visit.customer.model_dump(exclude={"time_zone"}, exclude_none=True))
    asks = []
    for survey, version in await repository.triggered_surveys(conn):
        if only and survey.id not in only:
            continue
        trigger = next((t for t in survey.triggers if _matches(
            t, "visit", channel=None, touchpoint=visit.touchpoint, location=visit.location)), None)
        if trigger is None:
            continue
        key = f"visit:{visit.key}"
        asks.append(Ask(
            survey=survey, version=version, request_id=invitation_id(survey.id, key), kind="trigger",
            customer=customer, requested_at=happened, time_zone=visit.customer.time_zone, language=visit.locale,
            location=visit.location, touchpoint=visit.touchpoint, context=visit.context, client_key=key,
            requested_by=requested_by, not_before=happened + timedelta(minutes=trigger.delay_minutes),
        ))
    return [(a.survey.id, i) for a, i in zip(asks, await invite(ctx, conn, asks), strict=True)]


# --- the funnel after the decision ------------------------------------------------------------
async def funnel_step(ctx: Context, conn: asyncpg.Connection, request_id: str, step: FunnelStep, *,
                      at: datetime | None = None) -> SurveyRequest | None:
    """Record ``step`` of an invitation the first time it happens, with its event; None when it
    had happened already (or there is no such invitation)."""
    at = at or ctx.clock.now()
    request = await repository.mark_step(conn, request_id, step.value, at=at)
    if request is not None:
        await enqueue_events(conn, [step_event(ctx.settings, request, step, at=at)])
    return request


async def on_mail_settled(ctx: Context, conn: asyncpg.Connection, mail: ClaimedMail, outcome: MailOutcome) -> None:
    """The mail queue settled an attempt of an invitation: delivered is a funnel step; an address
    the relay refused permanently (5xx: it does not exist) is suppressed as bounced."""
    if mail.purpose != invitations.PURPOSE:
        return
    now = ctx.clock.now()
    if outcome.delivered:
        await funnel_step(ctx, conn, mail.ref, FunnelStep.DELIVERED, at=now)
    for address in outcome.refused:
        if await suppressions.suppress(conn, ctx.settings.privacy_key(), address, reason="bounced", at=now,
                                       source="smtp"):
            logger.info("address suppressed: the relay refused it permanently", extra={"request_id": mail.ref})


def masked(address: str) -> str:
    """``l***@example.cn``: enough for its owner to recognise, little for anyone else."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"


async def unsubscribe(ctx: Context, conn: asyncpg.Connection, request_id: str) -> str | None:
    """The customer of an invitation unsubscribes: their address is suppressed (reason
    unsubscribed, the strongest), the step recorded, and their invitations not sent yet are
    withdrawn from the mail queue. Returns the address, or None when the invitation has none."""
    request = await repository.get_request(conn, request_id)
    address = invitations.usable_address(request.customer) if request else None
    if address is None:
        return None
    now = ctx.clock.now()
    key = ctx.settings.privacy_key()
    if await suppressions.suppress(conn, key, address, reason="unsubscribed", at=now, source=request.survey_id):
        ctx.metrics.unsubscribes.inc()
    await funnel_step(ctx, conn, request_id, FunnelStep.UNSUBSCRIBED, at=now)
    withdrawn = await queue.withdraw(conn, await repository.undelivered_for_contact(
        conn, suppressions.address_hash(key, address)))
    if withdrawn:
        await repository.forget_mails(conn, withdrawn)
        logger.info("invitations withdrawn: the customer unsubscribed", extra={"mails": len(withdrawn)})
    return address
