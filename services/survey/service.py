"""Survey use cases: plain async functions over a connection; no web or Kafka code.

How answers become ``feedback.received.v1`` events
--------------------------------------------------
Every answered rating question (mot, nps, csat, stars) is one event carrying
that rating with its scale. A free-text answer is the ``text`` of the event of
the rating question it follows (the usual "How was it? / Tell us why" pair);
text before any answered rating goes with the first answered rating; when no
rating was answered at all, each text answer is a text-only event. So one
comment is never counted twice, and the rating it explains travels with it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from services.survey import invitations, repository
from services.survey.metrics import SurveyMetrics
from services.survey.repository import SurveyRequest
from services.survey.schemas import Answer, SurveyDefinition
from services.survey.settings import SurveySettings
from shared.auth import BearerAuth
from shared.clock import Clock
from shared.contracts import Channel, FeedbackReceived, Rating, SurveyDetails, SurveyRequested
from shared.events import FEEDBACK_RECEIVED, Envelope
from shared.errors import PermanentError
from shared.mail import queue
from shared.mail.sender import MailSender
from shared.outbox import enqueue
from shared.signing import Signer

logger = logging.getLogger(__name__)

FEEDBACK_SOURCE = "survey"
"""The ``source`` of the feedback survey publishes (what it came through, like an API key's name)."""


@dataclass(frozen=True)
class Context:
    """Survey's components, built whole in ``create_app``."""

    settings: SurveySettings
    clock: Clock
    metrics: SurveyMetrics
    links: Signer  # personal survey links (services.survey.tokens)
    auth: BearerAuth  # the management API
    mail: MailSender  # sends the queued invitations (runs on the runtime's start/stop hooks)

    @property
    def feedback_topic(self) -> str:
        return self.settings.topic(FEEDBACK_RECEIVED.topic)


class SurveyExists(Exception):
    """A survey with this id exists; surveys are immutable."""


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


async def create_survey(conn: asyncpg.Connection, survey: SurveyDefinition) -> datetime:
    created_at = await repository.create_survey(conn, survey)
    if created_at is None:
        raise SurveyExists(survey.id)
    logger.info("survey created", extra={"survey_id": survey.id, "questions": len(survey.questions)})
    return created_at


def build_feedback(
    survey: SurveyDefinition,
    answers: dict[str, Answer],
    *,
    response_id: str,
    request: SurveyRequest | None,
    language: str | None,
    received_at: datetime,
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
        elif last_rating is None:
            loose.append((q.id, str(answers[q.id])))
        else:
            texts_for.setdefault(last_rating, []).append(str(answers[q.id]))
    if ratings and loose:
        texts_for[ratings[0]] = [t for _, t in loose] + texts_for.get(ratings[0], [])
        loose = []

    common = {
        "channel": Channel.SURVEY,
        "customer": request.customer if request else None,
        "location": (request.location if request else None) or survey.location,
        "touchpoint": (request.touchpoint if request else None) or survey.touchpoint,
        "received_at": received_at,
        "source": FEEDBACK_SOURCE,
        "attributes": {"survey_language": language} if language else {},
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


async def submit_response(
    ctx: Context,
    conn: asyncpg.Connection,
    *,
    survey: SurveyDefinition,
    answers: dict[str, Answer],
    request_id: str | None,
    submission_id: str | None,
    language: str | None,
    now: datetime | None = None,
) -> Submitted:
    """Store a response and enqueue its feedback events in the caller's transaction.

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
    response_id = str(uuid.uuid4())
    events = build_feedback(
        survey, answers, response_id=response_id, request=request, language=language,
        received_at=now or datetime.now(UTC),
    )
    stored = await repository.add_response(
        conn,
        response_id=response_id,
        survey_id=survey.id,
        request_id=request_id,
        submission_id=submission_id,
        answers=answers,
        language=language,
        feedback_ids=[e.id for e in events],
    )
    if not stored:
        previous = await repository.response_for_request(conn, request_id) if request_id else None
        raise AlreadyAnswered(previous)
    source, key = ctx.settings.event_source, ctx.settings.privacy_key()
    await enqueue(
        conn,
        [(ctx.feedback_topic, Envelope.new(FEEDBACK_RECEIVED, e, source=source, key=e.partition_key(key), id=e.id))
         for e in events],
    )
    logger.info(
        "survey response stored",
        extra={"survey_id": survey.id, "response_id": response_id, "request_id": request_id,
               "answers": len(answers), "events": len(events)},
    )
    return Submitted(response_id, [e.id for e in events])


async def record_request(ctx: Context, conn: asyncpg.Connection, req: SurveyRequested) -> bool:
    """Record a ``survey.requested.v1`` and queue its invitation mail in the same transaction.

    ``kind`` names the survey to ask (``recovery`` is built in). A kind without
    a survey can never succeed: it is dead-lettered (replayable once the
    survey exists). A customer without a usable email address is recorded
    with no invitation (``unsendable``).
    """
    survey = await repository.survey_definition(conn, req.kind)
    if survey is None:
        raise PermanentError(f"no survey {req.kind!r} for survey request kind {req.kind!r}")
    address = invitations.usable_address(req.customer)
    inserted = await repository.add_request(
        conn,
        request_id=req.request_id,
        survey_id=survey.id,
        kind=req.kind,
        alert_id=req.alert_id,
        customer=req.customer,
        language=req.language,
        location=req.location,
        touchpoint=req.touchpoint,
        requested_at=req.requested_at,
        mail_id=invitations.invitation_mail_id(req.request_id) if address else None,
        subjects=req.customer.pseudonyms(ctx.settings.privacy_key()),
    )
    if inserted and address:
        now = ctx.clock.now()
        mail = invitations.invitation(ctx.settings, request_id=req.request_id, customer=req.customer,
                                      address=address, language=req.language, survey=survey, now=now)
        await queue.enqueue(conn, [mail], now=now)
    logger.info(
        "survey request recorded" if inserted else "survey request already recorded",
        extra={"request_id": req.request_id, "survey_id": survey.id, "alert_id": req.alert_id,
               "invitation": "queued" if address else "unsendable"},
    )
    return inserted
