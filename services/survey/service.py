"""Survey use cases: surveys and their versions, partial answers, responses. Plain async
functions over a connection; no web or Kafka code. (Invitations: ``inviting.py``.)

How a response travels downstream
---------------------------------
``survey.responded.v1`` carries the whole response: every answer with its question
type, the survey version answered, the language, and the invitation's context (its
id, the customer, touchpoint, location and the free ``context``), so any consumer
can rebuild it. Beside it, every answered rating question on a shared scale (mot,
nps, csat, stars) is one ``feedback.received.v1`` carrying that rating, which is what
alerts scores and reporting counts. A free-text answer is the ``text`` of the event
of the rating question it follows (the usual "How was it? / Tell us why" pair); text
before any answered rating goes with the first answered rating; when no rating was
answered at all, each text answer is a text-only event. So one comment is never
counted twice, and the rating it explains travels with it. CES and single-choice
answers are in ``survey.responded.v1`` only (they are on no shared rating scale).

Feedback from a public survey always names a place: the survey's location, else
``survey:<id>``. Alerts groups negative feedback by place, so a flood of negative
answers to a public link joins one open alert instead of raising one per answer.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from services.survey import repository
from services.survey.funnel import step_event
from services.survey.metrics import SurveyMetrics
from services.survey.repository import SurveyRequest
from services.survey.schemas import Answer, QuestionType, SurveyDefinition
from services.survey.settings import SurveySettings
from shared.auth import BearerAuth, SignedTokens
from shared.clock import Clock
from shared.contracts import (
    Channel,
    FeedbackReceived,
    FunnelStep,
    Rating,
    SurveyAnswer,
    SurveyDetails,
    SurveyInvitationContext,
    SurveyResponded,
)
from shared.events import FEEDBACK_RECEIVED, SURVEY_RESPONDED, Envelope
from shared.mail.sender import MailSender
from shared.outbox import enqueue
from shared.ratelimit import KeyedLimiter
from shared.signing import Signer

logger = logging.getLogger(__name__)

FEEDBACK_SOURCE = "survey"
"""The ``source`` of the feedback survey publishes (what it came through, like an API key's name)."""


@dataclass(frozen=True)
class PublicLimits:
    """Rate limits of the public pages, per process (``SURVEY_*_PER_MINUTE``)."""

    clients: KeyedLimiter  # per client address, every request
    links: KeyedLimiter  # per personal link (its invitation), every request
    surveys: KeyedLimiter  # per public survey, answers and drafts

    @classmethod
    def of(cls, settings: SurveySettings) -> PublicLimits:
        return cls(
            clients=KeyedLimiter(settings.survey_client_requests_per_minute),
            links=KeyedLimiter(settings.survey_link_requests_per_minute),
            surveys=KeyedLimiter(settings.survey_public_submissions_per_minute),
        )


@dataclass(frozen=True)
class Context:
    """Survey's components, built whole in ``create_app``."""

    settings: SurveySettings
    clock: Clock
    metrics: SurveyMetrics
    links: Signer  # personal survey links, unsubscribe links, API tokens (services.survey.tokens)
    auth: BearerAuth  # the management and invitation APIs: the admin token and api_tokens
    api_tokens: SignedTokens  # scoped, revocable tokens (POST /v1/tokens)
    mail: MailSender  # sends the queued invitations (runs on the runtime's start/stop hooks)
    limits: PublicLimits  # the public pages' rate limits
    definitions: repository.Definitions  # parsed definitions by survey and version (versions never change)

    @property
    def feedback_topic(self) -> str:
        return self.settings.topic(FEEDBACK_RECEIVED.topic)


class SurveyExists(Exception):
    """A survey with this id exists (a new version is a PUT)."""


class AlreadyAnswered(Exception):
    """This personal link (or this exact submission) was answered before."""

    def __init__(self, response_id: str | None = None) -> None:
        super().__init__("already answered")
        self.response_id = response_id


class UnknownRequest(Exception):
    """A correctly signed link whose request this service does not know."""


@dataclass(frozen=True)
class Submitted:
    response_id: str
    feedback_ids: list[str]


async def create_survey(ctx: Context, conn: asyncpg.Connection, survey: SurveyDefinition) -> datetime:
    created_at = await repository.create_survey(conn, survey, now=ctx.clock.now())
    ctx.definitions.forget(survey.id)
    if created_at is None:
        raise SurveyExists(survey.id)
    logger.info("survey created", extra={"survey_id": survey.id, "questions": len(survey.questions)})
    return created_at


async def edit_survey(ctx: Context, conn: asyncpg.Connection, survey: SurveyDefinition) -> tuple[int, bool] | None:
    """Store ``survey`` as the next version of its id (nothing when it equals the current one);
    ``(version, created)``, or None when there is no such survey."""
    result = await repository.add_version(conn, survey, now=ctx.clock.now())
    ctx.definitions.forget(survey.id)
    if result and result[1]:
        logger.info("survey version created", extra={"survey_id": survey.id, "version": result[0]})
    return result


def place(survey: SurveyDefinition, request: SurveyRequest | None) -> tuple[str | None, str | None]:
    """Where a response's moment happened: the invitation's place, else the survey's; a public
    survey's feedback always has a location (``survey:<id>``) so that alerts groups it."""
    location = (request.location if request else None) or survey.location
    touchpoint = (request.touchpoint if request else None) or survey.touchpoint
    if location is None and request is None and survey.access == "public":
        location = f"survey:{survey.id}"
    return location, touchpoint


def build_feedback(
    survey: SurveyDefinition,
    answers: dict[str, Answer],
    *,
    response_id: str,
    request: SurveyRequest | None,
    language: str | None,
    received_at: datetime,
    version: int = 1,
) -> list[FeedbackReceived]:
    """The feedback events of one response (see the module docstring for the rules)."""
    ratings: list[str] = []  # answered rating question ids, in survey order
    texts_for: dict[str | None, list[str]] = {}
    last_rating: str | None = None
    loose: list[tuple[str, str]] = []  # (question id, text) before any answered rating
    for q in survey.questions:
        if q.id not in answers:
            continue
        if q.is_rating:
            ratings.append(q.id)
            last_rating = q.id
        elif q.type is not QuestionType.TEXT:
            continue  # ces, choice: in survey.responded.v1 only
        elif last_rating is None:
            loose.append((q.id, str(answers[q.id])))
        else:
            texts_for.setdefault(last_rating, []).append(str(answers[q.id]))
    if ratings and loose:
        texts_for[ratings[0]] = [t for _, t in loose] + texts_for.get(ratings[0], [])
        loose = []

    attributes: dict[str, object] = {"survey_version": version}
    if language:
        attributes["survey_language"] = language
    if request is not None:
        attributes["invitation_id"] = request.request_id
        attributes |= {f"context.{k}": v for k, v in request.context.items()}
    location, touchpoint = place(survey, request)
    common = {
        "channel": Channel.SURVEY,
        "customer": request.customer if request else None,
        "location": location,
        "touchpoint": touchpoint,
        "received_at": received_at,
        "source": FEEDBACK_SOURCE,
        "attributes": attributes,
    }
    alert_id = request.alert_id if request else None

    def details(question_id: str) -> SurveyDetails:
        return SurveyDetails(
            survey_id=survey.id, response_id=response_id, question_id=question_id, recovery_for_alert_id=alert_id
        )

    events = []
    for qid in ratings:
        question = survey.question(qid)
        text = "\n\n".join(texts_for.get(qid, [])) or None
        events.append(
            FeedbackReceived(
                id=str(uuid.uuid4()),
                rating=Rating(scale=question.type.scale, value=int(answers[qid])),
                text=text,
                survey=details(qid),
                **common,
            )
        )
    for qid, text in loose:
        events.append(FeedbackReceived(id=str(uuid.uuid4()), text=text, survey=details(qid), **common))
    return events


def build_response(
    survey: SurveyDefinition, answers: dict[str, Answer], *, response_id: str, version: int,
    request: SurveyRequest | None, language: str | None, submitted_at: datetime, feedback_ids: list[str],
) -> SurveyResponded:
    """The ``survey.responded.v1`` of one response: the whole of it."""
    location, touchpoint = place(survey, request)
    invitation = None
    if request is not None:
        invitation = SurveyInvitationContext(
            invitation_id=request.request_id, kind=request.kind, recovery_for_alert_id=request.alert_id,
            customer=request.customer, locale=request.language, location=request.location,
            touchpoint=request.touchpoint, context=request.context,
        )
    return SurveyResponded(
        response_id=response_id, survey_id=survey.id, survey_version=version, language=language,
        answers=[SurveyAnswer(question_id=q.id, type=q.type.value, value=answers[q.id])
                 for q in survey.questions if q.id in answers],
        feedback_ids=feedback_ids, location=location, touchpoint=touchpoint, invitation=invitation,
        submitted_at=submitted_at,
    )


def draft_key(survey_id: str, *, request_id: str | None, submission_id: str | None) -> str | None:
    """Where a page's partial answers are kept: its personal link, else its browser's submission id."""
    if request_id:
        return f"r:{request_id}"
    if submission_id:
        return f"s:{survey_id}:{submission_id}"
    return None


async def submit_response(
    ctx: Context,
    conn: asyncpg.Connection,
    *,
    survey: SurveyDefinition,
    version: int,
    answers: dict[str, Answer],
    request_id: str | None,
    submission_id: str | None,
    language: str | None,
) -> Submitted:
    """Store a response with its events — its ``feedback.received.v1`` events and its
    ``survey.responded.v1`` — in one statement, dropping its partial answers; for an invitation
    (``request_id``: call in a transaction) also its ``started`` and ``completed`` funnel steps.

    A personal link is answered once (unique request id); an anonymous
    submission is deduplicated by its ``submission_id``. Raises
    :class:`AlreadyAnswered` for a repeat and :class:`UnknownRequest` for a
    link whose request is not ours.
    """
    request = None
    if request_id is not None:
        request = await repository.get_request(conn, request_id)
        if request is None or request.survey_id != survey.id:
            raise UnknownRequest(request_id)
    now = ctx.clock.now()
    response_id = str(uuid.uuid4())
    events = build_feedback(
        survey, answers, response_id=response_id, request=request, language=language, received_at=now,
        version=version,
    )
    feedback_ids = [e.id for e in events]
    source, key = ctx.settings.event_source, ctx.settings.privacy_key()
    whole = build_response(survey, answers, response_id=response_id, version=version, request=request,
                           language=language, submitted_at=now, feedback_ids=feedback_ids)
    announced = [(ctx.feedback_topic,
                  Envelope.new(FEEDBACK_RECEIVED, e, source=source, key=e.partition_key(key), id=e.id))
                 for e in events]
    announced.append((ctx.settings.topic(SURVEY_RESPONDED.topic), Envelope.new(
        SURVEY_RESPONDED, whole, source=source, key=f"survey:{survey.id}", subject=response_id, id=response_id,
        time=now)))
    stored = await repository.add_response(
        conn,
        response_id=response_id,
        survey_id=survey.id,
        survey_version=version,
        request_id=request_id,
        submission_id=submission_id,
        answers=answers,
        language=language,
        feedback_ids=feedback_ids,
        submitted_at=now,
        draft_key=draft_key(survey.id, request_id=request_id, submission_id=submission_id),
        events=announced,
    )
    if not stored:
        previous = await repository.response_for_request(conn, request_id) if request_id else None
        raise AlreadyAnswered(previous)
    if request is not None:
        steps = []
        for step in (FunnelStep.STARTED, FunnelStep.COMPLETED):  # answered at once: started then too
            marked = await repository.mark_step(conn, request.request_id, step.value, at=now)
            if marked is not None:
                steps.append(step_event(ctx.settings, marked, step, at=now))
        await enqueue(conn, steps)
    logger.info(
        "survey response stored",
        extra={"survey_id": survey.id, "version": version, "response_id": response_id, "request_id": request_id,
               "answers": len(answers), "events": len(events)},
    )
    return Submitted(response_id, feedback_ids)


async def save_draft(
    ctx: Context, conn: asyncpg.Connection, *, survey: SurveyDefinition, version: int, answers: dict[str, Answer],
    request_id: str | None, submission_id: str | None,
) -> bool:
    """Keep a page's partial answers (replacing what was kept); for an invitation the first one
    is its ``started`` step. False when there is nowhere to keep them or the page was answered."""
    key = draft_key(survey.id, request_id=request_id, submission_id=submission_id)
    if key is None:
        return False
    if request_id is not None:
        if await repository.response_for_request(conn, request_id):
            return False
    elif await repository.response_for_submission(conn, survey.id, submission_id):
        return False
    now = ctx.clock.now()
    await repository.save_draft(conn, key, survey_id=survey.id, version=version, request_id=request_id,
                                answers=answers, now=now)
    if request_id is not None and answers:
        marked = await repository.mark_step(conn, request_id, FunnelStep.STARTED.value, at=now)
        if marked is not None:
            await enqueue(conn, [step_event(ctx.settings, marked, FunnelStep.STARTED, at=now)])
    return True

