"""Survey definitions (what an admin creates), invitations, and the validation of answers.

A survey keeps its id; editing it stores a new *version* (1, 2, ...) and every
response records the version it answered. Every text is bilingual: ``zh`` is
shown with ``lang="zh-CN"``, ``en`` with ``lang="en"``, and a definition sent
to the API needs both (422 names each text missing one). Definitions stored
before that rule load as they are, the missing language falling back to the
other.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from shared.contracts import (
    MAX_TEXT_CHARS,
    RATING_RANGES,
    AttributeName,
    AttributeValue,
    Channel,
    Customer,
    Key,
    Label,
    RatingScale,
    SkipReason,
    Timestamp,
    clean_text,
)
from shared.contracts import Text as ContractText

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_QUESTIONS = 30
MAX_OPTIONS = 20
MAX_CONTEXT_KEYS = 20
MAX_CONTEXT_BYTES = 2048
Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")
STORED = {"stored": True}
"""Validation context of a definition read back from the database (texts may lack a language)."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class QuestionType(StrEnum):
    MOT = "mot"  # Carlzon moment of truth, faces -3..+3
    NPS = "nps"  # 0..10
    CSAT = "csat"  # 1..5
    STARS = "stars"  # 1..5
    CES = "ces"  # customer effort, 1 (very difficult) .. 7 (very easy)
    CHOICE = "choice"  # one of the question's options
    TEXT = "text"  # free text

    @property
    def scale(self) -> RatingScale | None:
        """The shared rating scale the answer travels on in ``feedback.received.v1`` (None: not a rating)."""
        try:
            return RatingScale(self.value)
        except ValueError:
            return None

    @property
    def range(self) -> tuple[int, int] | None:
        """The whole numbers a scale question accepts (None: not a scale)."""
        if self is QuestionType.CES:
            return CES_RANGE
        scale = self.scale
        return RATING_RANGES[scale] if scale else None


CES_RANGE = (1, 7)


class Text(Strict):
    """A bilingual text. Both languages are required in a definition sent to the API;
    a stored definition may lack one, which then falls back to the other."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True,
                              json_schema_extra={"required": ["zh", "en"]})

    zh: ContractText | None = Field(None, min_length=1, max_length=500, description="Simplified Chinese (zh-CN).")
    en: ContractText | None = Field(None, min_length=1, max_length=500, description="English.")

    @model_validator(mode="after")
    def _languages(self, info: ValidationInfo) -> Self:
        if not self.zh and not self.en:
            raise ValueError("give the text in zh and en")
        stored = bool(info.context and info.context.get("stored"))
        if not stored and not (self.zh and self.en):
            raise ValueError(f"give the text in both zh and en (only {'zh' if self.zh else 'en'} given)")
        return self

    def get(self, lang: Lang) -> str:
        if lang == "en":
            return self.en or self.zh or ""
        return self.zh or self.en or ""


class Option(Strict):
    """One option of a single-choice question."""

    id: str = Field(pattern=SLUG, description="Stable id; the answer's value.")
    label: Text


class Question(Strict):
    id: str = Field(pattern=SLUG, description="Stable id; names the answer in responses and events.")
    type: QuestionType
    label: Text
    help: Text | None = Field(None, description="Optional hint shown under the question.")
    required: bool = False
    max_length: int = Field(2000, ge=1, le=MAX_TEXT_CHARS, description="Longest accepted answer (text questions).")
    options: list[Option] | None = Field(
        None, min_length=2, max_length=MAX_OPTIONS, description="The options of a `choice` question (2..20)."
    )

    @model_validator(mode="after")
    def _options(self) -> Self:
        if self.type is QuestionType.CHOICE:
            if not self.options:
                raise ValueError(f"choice question {self.id!r} needs options")
            ids = [o.id for o in self.options]
            if len(set(ids)) != len(ids):
                raise ValueError(f"choice question {self.id!r} has an option id twice")
        elif self.options is not None:
            raise ValueError(f"only choice questions have options ({self.id!r} is {self.type.value})")
        return self

    @property
    def is_rating(self) -> bool:
        """Answered on a shared rating scale (mot, nps, csat, stars): a rating in feedback events."""
        return self.type.scale is not None

    def option(self, option_id: str) -> Option | None:
        return next((o for o in self.options or () if o.id == option_id), None)


class QuietHours(Strict):
    """Hours of the customer's day in which no invitation is sent; start == end: none."""

    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM, customer's local time.")
    end: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM; before start: the next day.")
    mode: Literal["defer", "skip"] = Field(
        "defer", description="defer: sent when the quiet hours end; skip: not sent (reason quiet_hours).")


def _time_zone(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as Asia/Shanghai)") from None
    return value


class ContactRules(Strict):
    """How often one customer may be invited; every field left out takes the system default
    (``SURVEY_*`` settings, README). Recovery surveys bypass the frequency rules (the first three)."""

    max_invitations: int | None = Field(None, ge=1, le=1000,
                                        description="At most this many invitations per customer in the window.")
    window_days: int | None = Field(None, ge=1, le=3650, description="The window of max_invitations, in days.")
    scope: Literal["all", "survey"] | None = Field(
        None, description="all: invitations of every survey count towards max_invitations; survey: this one's only.")
    min_days_between: float | None = Field(
        None, ge=0, le=3650, description="At least this many days between any two invitations to one customer.")
    quiet_hours: QuietHours | None = None
    time_zone: str | None = Field(None, description="The customers' time zone when an invitation names none (IANA).")

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return _time_zone(value)


class Trigger(Strict):
    """Invite after something happened: a feedback (``feedback.received.v1``, any channel but
    survey) or a visit (``POST /v1/visits``) matching every filter given."""

    on: Literal["feedback", "visit"]
    channels: list[Channel] | None = Field(None, max_length=10, description="Feedback only: its channel.")
    touchpoints: list[Label] | None = Field(None, max_length=50)
    locations: list[Label] | None = Field(None, max_length=200)
    delay_minutes: int = Field(0, ge=0, le=10_080, description="Send this long after it happened (at most 7 days).")

    @model_validator(mode="after")
    def _channels(self) -> Self:
        if self.on == "visit" and self.channels:
            raise ValueError("a visit trigger has no channels")
        if self.channels and Channel.SURVEY in self.channels:
            raise ValueError("a survey answer never triggers an invitation")
        return self


class SurveyDefinition(Strict):
    """The body of ``POST /v1/surveys`` and ``PUT /v1/surveys/{id}``."""

    id: str = Field(pattern=SLUG, description="URL id: the public page is /s/{id}.")
    title: Text
    intro: Text | None = None
    thanks: Text | None = Field(None, description="Shown after submitting; a generic thank-you when absent.")
    access: Literal["public", "link"] = Field(
        "public", description="public: anyone with the URL may answer; link: only with a personal signed link."
    )
    touchpoint: str | None = Field(None, min_length=1, max_length=120, description="Copied into the feedback events.")
    location: str | None = Field(None, min_length=1, max_length=120, description="Copied into the feedback events.")
    questions: list[Question] = Field(min_length=1, max_length=MAX_QUESTIONS)
    contact_rules: ContactRules | None = Field(None, description="Overrides of the system's contact rules.")
    triggers: list[Trigger] = Field(default_factory=list, max_length=10,
                                    description="Invite automatically after matching feedback or visits.")

    @model_validator(mode="after")
    def _unique_question_ids(self) -> Self:
        seen: set[str] = set()
        for question in self.questions:
            if question.id in seen:
                raise ValueError(f"question id {question.id!r} is used twice")
            seen.add(question.id)
        return self

    def question(self, question_id: str) -> Question | None:
        return next((q for q in self.questions if q.id == question_id), None)

    @classmethod
    def stored(cls, raw: str | bytes) -> SurveyDefinition:
        """A definition read back from the database."""
        return cls.model_validate_json(raw, context=STORED)


class StoredSurvey(BaseModel):
    definition: SurveyDefinition
    version: int
    builtin: bool
    created_at: datetime
    responses: int = 0


class SurveySummary(BaseModel):
    id: str
    version: int
    title: Text
    access: str
    questions: int
    builtin: bool
    created_at: datetime
    responses: int


class SurveyVersion(BaseModel):
    version: int
    created_at: datetime
    survey: SurveyDefinition


class ResponseIn(Strict):
    """The JSON body of ``POST /s/{survey_id}/responses`` (and of a draft)."""

    answers: dict[str, int | str | None] = Field(max_length=MAX_QUESTIONS)
    token: str | None = Field(None, max_length=1024, description="The t parameter of a personal link.")
    language: Lang | None = None
    version: int | None = Field(None, ge=1, description="The survey version the form showed (default: the current).")
    submission_id: str | None = Field(
        None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="Client-chosen id; a repeated submission with the same id is answered once.",
    )


# --- invitations ---------------------------------------------------------------------------
class InvitationCustomer(Customer):
    """Who to invite. Mail goes to ``email``; ``id``, ``email`` and ``phone`` (pseudonymised)
    identify the customer for the contact rules."""

    time_zone: str | None = Field(None, description="IANA time zone (Asia/Shanghai) for quiet hours.")

    @field_validator("time_zone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return _time_zone(value)


def _context(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > MAX_CONTEXT_KEYS:
        raise ValueError(f"at most {MAX_CONTEXT_KEYS} context keys, got {len(value)}")
    for name in value:
        if len(name) > 48:
            raise ValueError(f"a context key is at most 48 characters ({name[:20]!r}...)")
    size = len(orjson.dumps(value))
    if size > MAX_CONTEXT_BYTES:
        raise ValueError(f"context is {size} bytes as JSON; the limit is {MAX_CONTEXT_BYTES}")
    return value


class Invitee(Strict):
    """Who, and the moment an invitation asks about (the fields an invitation and a visit share)."""

    customer: InvitationCustomer
    locale: str | None = Field(None, pattern=r"^[a-zA-Z]{2,3}(-[A-Za-z0-9]{2,8})*$",
                               description="The customer's language: zh-CN or en comes first in the mail and form.")
    touchpoint: Label | None = None
    location: Label | None = None
    context: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        description=f"Free context travelling with every response (order id, visit id, agent): at most "
        f"{MAX_CONTEXT_KEYS} keys, {MAX_CONTEXT_BYTES} bytes as JSON.",
    )

    @field_validator("context")
    @classmethod
    def _ctx(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _context(value)


class InvitationIn(Invitee):
    """The body of ``POST /v1/invitations``; a row of a bulk upload (whose survey is the upload's)."""

    survey_id: str = Field(pattern=SLUG)
    key: Key | None = Field(
        None, min_length=1, max_length=200,
        description="Idempotency key (or the Idempotency-Key header): the same key for the same survey is the "
        "same invitation, answered as the first time; reused for a different invitation: 409.",
    )


class VisitIn(Invitee):
    """The body of ``POST /v1/visits``: a customer's visit, for the surveys whose trigger asks for one."""

    occurred_at: Timestamp | None = Field(None, description="When the visit happened, with its UTC offset "
                                          "(default now).")
    key: Key = Field(min_length=1, max_length=200, description="The visit's id at its source (idempotency).")


class InvitationOut(BaseModel):
    invitation_id: str
    status: Literal["queued", "skipped"]
    reason: SkipReason | None = None
    send_at: datetime | None = Field(None, description="When it is sent, if deferred (quiet hours, trigger delay).")


class RowResult(BaseModel):
    row: int = Field(description="1-based row number (a CSV header is row 0).")
    invitation_id: str | None = None
    status: Literal["queued", "skipped", "invalid"]
    reason: SkipReason | None = None
    send_at: datetime | None = None
    errors: list[str] | None = None


class BulkReport(BaseModel):
    survey_id: str
    rows: int
    queued: int
    skipped: int
    invalid: int
    skipped_by_reason: dict[str, int]
    results: list[RowResult]


class TokenIn(Strict):
    subject: str = Field(min_length=1, max_length=120, description="Who holds it (a system's name).")
    scopes: list[str] = Field(min_length=1, max_length=50, description="invitations:write, visits:write, "
                              "surveys:admin, and survey:<id> to limit it to some surveys.")
    days: int = Field(90, ge=1, le=3650, description="Lifetime in days.")


# --- answers -------------------------------------------------------------------------------
Answer = int | str


@dataclass(frozen=True)
class Issue:
    """One validation problem, said in both languages; ``question_id`` None is about the whole form."""

    question_id: str | None
    code: str
    zh: str
    en: str

    def as_dict(self) -> dict[str, Any]:
        return {"question_id": self.question_id, "code": self.code, "message": {"zh": self.zh, "en": self.en}}


def _parse_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = unicodedata.normalize("NFKC", value).strip()  # full-width digits and signs from Chinese IMEs
        if text.lstrip("+-").isdigit() and text.lstrip("+-").isascii():
            return int(text)
    return None


def _check(q: Question, value: Any) -> tuple[Answer | None, Issue | None]:
    """One non-empty answer, cleaned, or its issue."""
    if q.type is QuestionType.TEXT:
        if not isinstance(value, str):
            return None, Issue(q.id, "not_text", "请输入文字。", "Please enter text.")
        if len(value) > q.max_length:
            return None, Issue(q.id, "too_long", f"最多 {q.max_length} 个字符（现为 {len(value)} 个）。",
                               f"At most {q.max_length} characters (this is {len(value)}).")
        return value, None
    if q.type is QuestionType.CHOICE:
        if isinstance(value, str) and q.option(value) is not None:
            return value, None
        return None, Issue(q.id, "unknown_option", "请从选项中选择一项。", "Choose one of the options.")
    low, high = q.type.range
    number = _parse_int(value)
    if number is None or not low <= number <= high:
        return None, Issue(q.id, "out_of_range", f"请选择 {low} 到 {high} 之间的整数。",
                           f"Choose a whole number from {low} to {high}.")
    return number, None


def _given(survey: SurveyDefinition, raw: Mapping[str, Any]) -> Iterator[tuple[Question, Any]]:
    """Each question with its raw answer, stripped; None when it was left empty."""
    for q in survey.questions:
        value = raw.get(q.id)
        if isinstance(value, str):
            value = clean_text(value).strip()  # free text: a stray NUL or lone surrogate never loses an answer
        yield q, None if value is None or value == "" else value


def validate_answers(survey: SurveyDefinition, raw: Mapping[str, Any]) -> tuple[dict[str, Answer], list[Issue]]:
    """Check raw answers (strings from a form, ints or strings from JSON)
    against the survey; returns the clean answers in question order and the issues."""
    issues: list[Issue] = []
    for key in raw:
        if survey.question(key) is None:
            issues.append(Issue(None, "unknown_question", f"问卷中没有问题 “{key}”。", f"The survey has no question {key!r}."))
    answers: dict[str, Answer] = {}
    for q, value in _given(survey, raw):
        if value is None:
            if q.required:
                issues.append(Issue(q.id, "required", "请回答此问题。", "Please answer this question."))
            continue
        clean, issue = _check(q, value)
        if issue is not None:
            issues.append(issue)
        else:
            answers[q.id] = clean
    if not answers and not issues:
        issues.append(Issue(None, "empty", "请至少回答一个问题。", "Please answer at least one question."))
    return answers, issues


def partial_answers(survey: SurveyDefinition, raw: Mapping[str, Any]) -> dict[str, Answer]:
    """The valid answers among ``raw`` (a draft: unknown questions, empty and invalid values dropped)."""
    checked = ((q, _check(q, value)) for q, value in _given(survey, raw) if value is not None)
    return {q.id: clean for q, (clean, issue) in checked if issue is None}
