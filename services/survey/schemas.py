"""Survey definitions (what an admin creates) and the validation of answers.

A survey is immutable once created: responses refer to its question ids, so
a changed survey is a new survey id. Texts are bilingual (``zh`` is shown
with ``lang="zh-CN"``, ``en`` with ``lang="en"``); at least one language is
required, the other falls back to it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts import MAX_TEXT_CHARS, RATING_RANGES, RatingScale, clean_text
from shared.contracts import Text as ContractText

SLUG = r"^[a-z0-9][a-z0-9_-]{0,63}$"
MAX_QUESTIONS = 30
Lang = Literal["zh-CN", "en"]
LANGS: tuple[Lang, ...] = ("zh-CN", "en")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class QuestionType(StrEnum):
    MOT = "mot"  # Carlzon moment of truth, faces -3..+3
    NPS = "nps"  # 0..10
    CSAT = "csat"  # 1..5
    STARS = "stars"  # 1..5
    TEXT = "text"  # free text

    @property
    def scale(self) -> RatingScale | None:
        return None if self is QuestionType.TEXT else RatingScale(self.value)

    @property
    def range(self) -> tuple[int, int] | None:
        scale = self.scale
        return RATING_RANGES[scale] if scale else None


class Text(Strict):
    """A bilingual text; one language may be missing and then falls back to the other."""

    zh: ContractText | None = Field(None, min_length=1, max_length=500, description="Simplified Chinese (zh-CN).")
    en: ContractText | None = Field(None, min_length=1, max_length=500, description="English.")

    @model_validator(mode="after")
    def _one_language(self) -> Self:
        if not self.zh and not self.en:
            raise ValueError("give the text in zh, en or both")
        return self

    def get(self, lang: Lang) -> str:
        if lang == "en":
            return self.en or self.zh or ""
        return self.zh or self.en or ""


class Question(Strict):
    id: str = Field(pattern=SLUG, description="Stable id; names the answer in responses and events.")
    type: QuestionType
    label: Text
    help: Text | None = Field(None, description="Optional hint shown under the question.")
    required: bool = False
    max_length: int = Field(2000, ge=1, le=MAX_TEXT_CHARS, description="Longest accepted answer (text questions).")

    @property
    def is_rating(self) -> bool:
        return self.type is not QuestionType.TEXT


class SurveyDefinition(Strict):
    """The body of ``POST /v1/surveys``."""

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


class StoredSurvey(BaseModel):
    definition: SurveyDefinition
    builtin: bool
    created_at: datetime
    responses: int = 0


class SurveySummary(BaseModel):
    id: str
    title: Text
    access: str
    questions: int
    builtin: bool
    created_at: datetime
    responses: int


class ResponseIn(Strict):
    """The JSON body of ``POST /s/{survey_id}/responses``."""

    answers: dict[str, int | str | None] = Field(max_length=MAX_QUESTIONS)
    token: str | None = Field(None, max_length=1024, description="The t parameter of a personal link.")
    language: Lang | None = None
    submission_id: str | None = Field(
        None, min_length=8, max_length=64, pattern=r"^[A-Za-z0-9_-]+$",
        description="Client-chosen id; a repeated submission with the same id is answered once.",
    )


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


def validate_answers(survey: SurveyDefinition, raw: Mapping[str, Any]) -> tuple[dict[str, Answer], list[Issue]]:
    """Check raw answers (strings from a form, ints or strings from JSON)
    against the survey; returns the clean answers in question order and the issues."""
    issues: list[Issue] = []
    for key in raw:
        if survey.question(key) is None:
            issues.append(Issue(None, "unknown_question", f"问卷中没有问题 “{key}”。", f"The survey has no question {key!r}."))
    answers: dict[str, Answer] = {}
    for q in survey.questions:
        value = raw.get(q.id)
        if isinstance(value, str):
            value = clean_text(value).strip()  # free text: a stray NUL or lone surrogate never loses an answer
        if value is None or value == "":
            if q.required:
                issues.append(Issue(q.id, "required", "请回答此问题。", "Please answer this question."))
            continue
        if q.type is QuestionType.TEXT:
            if not isinstance(value, str):
                issues.append(Issue(q.id, "not_text", "请输入文字。", "Please enter text."))
            elif len(value) > q.max_length:
                issues.append(
                    Issue(q.id, "too_long", f"最多 {q.max_length} 个字符（现为 {len(value)} 个）。",
                          f"At most {q.max_length} characters (this is {len(value)}).")
                )
            else:
                answers[q.id] = value
            continue
        low, high = q.type.range
        number = _parse_int(value)
        if number is None or not low <= number <= high:
            issues.append(
                Issue(q.id, "out_of_range", f"请选择 {low} 到 {high} 之间的整数。",
                      f"Choose a whole number from {low} to {high}.")
            )
            continue
        answers[q.id] = number
    if not answers and not issues:
        issues.append(Issue(None, "empty", "请至少回答一个问题。", "Please answer at least one question."))
    return answers, issues
