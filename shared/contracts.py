"""Versioned payload models of every event on Kafka (the data of the envelope).

These are contracts between services, not business rules: they say what an
event carries and what values are well-formed, nothing about what a service
does with it. Changing a field incompatibly means a new ``.v2`` type.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Self

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

MAX_TEXT_CHARS = 20_000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_JSON_BYTES = 4096

Label = Annotated[str, Field(min_length=1, max_length=120)]


class Strict(BaseModel):
    """Unknown fields are an error, so a typo never vanishes silently."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class Channel(StrEnum):
    WEB = "web"
    KIOSK = "kiosk"
    EMAIL = "email"
    PHONE = "phone"
    SUGGESTION_BOX = "suggestion_box"
    SURVEY = "survey"


class RatingScale(StrEnum):
    MOT = "mot"  # Carlzon moment of truth, -3..+3
    CSAT = "csat"  # 1..5
    NPS = "nps"  # 0..10
    STARS = "stars"  # 1..5


RATING_RANGES: dict[RatingScale, tuple[int, int]] = {
    RatingScale.MOT: (-3, 3),
    RatingScale.CSAT: (1, 5),
    RatingScale.NPS: (0, 10),
    RatingScale.STARS: (1, 5),
}


class Rating(Strict):
    scale: RatingScale
    value: int = Field(description="Whole number within the scale's range: mot -3..3, csat 1..5, nps 0..10, stars 1..5.")

    @model_validator(mode="after")
    def _in_range(self) -> Self:
        low, high = RATING_RANGES[self.scale]
        if not low <= self.value <= high:
            raise ValueError(f"{self.scale.value} rating must be between {low} and {high}, got {self.value}")
        return self


class Customer(Strict):
    id: str | None = Field(None, max_length=200, description="The company's own customer id.")
    name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    phone: str | None = Field(None, max_length=40, pattern=r"^\+?[0-9 ()\-.]{3,40}$")

    def key(self) -> str | None:
        """A stable identity for ordering and grouping: id, else email, else phone."""
        if self.id:
            return f"id:{self.id}"
        if self.email:
            return f"email:{self.email.lower()}"
        if self.phone:
            return "phone:" + "".join(ch for ch in self.phone if ch.isdigit() or ch == "+")
        return None


class Attachment(Strict):
    filename: str | None = Field(None, max_length=300)
    content_type: str = Field(max_length=200)
    size: int = Field(ge=0)


class WebDetails(Strict):
    page_url: str | None = Field(None, max_length=2000)
    user_agent: str | None = Field(None, max_length=500)
    form_id: str | None = Field(None, max_length=200)


class KioskDetails(Strict):
    device_id: str | None = Field(None, max_length=200)
    face: int | None = Field(None, description="The face tapped, as shown on the kiosk.")


class EmailDetails(Strict):
    message_id: str | None = Field(None, max_length=998)
    sender: str | None = Field(None, max_length=998)
    recipient: str | None = Field(None, max_length=998)
    subject: str | None = Field(None, max_length=998)
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)


class PhoneDetails(Strict):
    agent_id: str | None = Field(None, max_length=200)
    call_id: str | None = Field(None, max_length=200)
    duration_seconds: int | None = Field(None, ge=0, le=86_400)
    direction: str | None = Field(None, pattern="^(inbound|outbound)$")


class SuggestionBoxDetails(Strict):
    import_id: str | None = Field(None, max_length=200)
    line: int | None = Field(None, ge=1)
    card_id: str | None = Field(None, max_length=200)


class SurveyDetails(Strict):
    survey_id: str = Field(max_length=200)
    response_id: str | None = Field(None, max_length=200)
    question_id: str | None = Field(None, max_length=200)
    recovery_for_alert_id: str | None = Field(
        None, max_length=200, description="Set when this answers a recovery survey after an alert was resolved."
    )


_DETAILS_FIELD = {
    Channel.WEB: "web",
    Channel.KIOSK: "kiosk",
    Channel.EMAIL: "email",
    Channel.PHONE: "phone",
    Channel.SUGGESTION_BOX: "suggestion_box",
    Channel.SURVEY: "survey",
}

AttributeValue = str | int | float | bool | None


class FeedbackIn(Strict):
    """One piece of feedback as a channel submits it (the body of ``POST /v1/feedback``)."""

    channel: Channel
    text: str | None = Field(None, max_length=MAX_TEXT_CHARS, description="What the customer said, in any language.")
    rating: Rating | None = None
    customer: Customer | None = None
    touchpoint: Label | None = Field(None, description="Where in the journey: check-in, checkout, delivery, call centre ...")
    location: Label | None = Field(None, description="Store, branch, airport, route ...")
    occurred_at: datetime | None = Field(None, description="When the customer had the experience (ISO 8601 with offset).")
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="BCP 47; detected (zh/en) when absent.")
    web: WebDetails | None = None
    kiosk: KioskDetails | None = None
    email: EmailDetails | None = None
    phone: PhoneDetails | None = None
    suggestion_box: SuggestionBoxDetails | None = None
    survey: SurveyDetails | None = None
    attributes: dict[Annotated[str, Field(min_length=1, max_length=64)], AttributeValue] = Field(
        default_factory=dict,
        description=f"Free key/value pairs; at most {MAX_ATTRIBUTES} keys and {MAX_ATTRIBUTES_JSON_BYTES} bytes as JSON.",
    )

    @field_validator("attributes")
    @classmethod
    def _attributes_small(cls, value: dict[str, Any]) -> dict[str, Any]:
        if len(value) > MAX_ATTRIBUTES:
            raise ValueError(f"at most {MAX_ATTRIBUTES} attributes, got {len(value)}")
        if not value:
            return value
        size = len(orjson.dumps(value))  # compact UTF-8, as the event carries it
        if size > MAX_ATTRIBUTES_JSON_BYTES:
            raise ValueError(f"attributes are {size} bytes as JSON; the limit is {MAX_ATTRIBUTES_JSON_BYTES}")
        return value

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("occurred_at needs a UTC offset, e.g. 2026-05-01T09:30:00+08:00")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if not (self.text and self.text.strip()) and self.rating is None:
            raise ValueError("feedback needs a text, a rating, or both")
        own = _DETAILS_FIELD[self.channel]
        foreign = [f for f in _DETAILS_FIELD.values() if f != own and getattr(self, f) is not None]
        if foreign:
            raise ValueError(
                f"details {', '.join(foreign)} do not belong to channel {self.channel.value}; use '{own}'"
            )
        return self

    def partition_key(self) -> str:
        """Events about one customer stay in order; anonymous ones by place."""
        if self.customer and (key := self.customer.key()):
            return f"customer:{key}"
        return f"place:{self.location or '-'}/{self.touchpoint or '-'}"


class FeedbackReceived(FeedbackIn):
    """Payload of ``feedback.received.v1``: the feedback plus what intake adds."""

    model_config = ConfigDict(extra="ignore")  # newer producers may add fields

    id: str
    received_at: datetime
    source: str = Field(description="Name of the API key / source that submitted it.")
    language: str | None = None


class FeedbackScored(BaseModel):
    """Payload of ``feedback.scored.v1``: every feedback's MOT score, as alerts computed it."""

    model_config = ConfigDict(extra="ignore")

    feedback_id: str
    channel: Channel
    location: str | None = None
    touchpoint: str | None = None
    occurred_at: datetime | None = None
    received_at: datetime
    rating: Rating | None = None
    mot: int = Field(ge=-3, le=3)
    negative: bool
    confidence: float = Field(ge=0, le=1)
    cues: list[str] = Field(default_factory=list)
    language: str | None = None
    escalation: list[str] = Field(default_factory=list)


class AlertStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    EXPLORE = "explore"
    OFFER = "offer"
    ACTION = "action"
    CONFIRM = "confirm"
    RESOLVED = "resolved"
    REOPENED = "reopened"


class AlertRaised(BaseModel):
    """Payload of ``alert.raised.v1``: a new alert for a negative moment of truth."""

    model_config = ConfigDict(extra="ignore")

    alert_id: str
    feedback_id: str
    severity: int = Field(ge=-3, le=-1, description="The MOT score that raised it: -1, -2 or -3.")
    channel: Channel
    location: str | None = None
    touchpoint: str | None = None
    team: str | None = None
    summary: str = ""
    raised_at: datetime
    sla_due_at: datetime | None = None


class AlertUpdated(BaseModel):
    """Payload of ``alert.updated.v1``: a change of an alert's state."""

    model_config = ConfigDict(extra="ignore")

    alert_id: str
    status: AlertStatus
    previous_status: AlertStatus | None = None
    severity: int = Field(ge=-3, le=-1)
    channel: Channel
    location: str | None = None
    touchpoint: str | None = None
    actor: str | None = None
    note: str | None = None
    at: datetime
    raised_at: datetime
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    sla_breached: bool = False
    feedback_count: int = Field(1, ge=1, description="Feedback grouped into this alert so far.")


class SurveyRequested(BaseModel):
    """Payload of ``survey.requested.v1``: ask a customer a (recovery) survey."""

    model_config = ConfigDict(extra="ignore")

    request_id: str
    kind: str = Field("recovery", description="recovery: after an alert was resolved.")
    alert_id: str | None = None
    customer: Customer
    language: str | None = None
    location: str | None = None
    touchpoint: str | None = None
    requested_at: datetime
