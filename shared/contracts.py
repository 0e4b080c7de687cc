"""Versioned payload models of every event on Kafka (the data of the envelope).

These are contracts between services, not business rules: they say what an
event carries and what values are well-formed, nothing about what a service
does with it. Changing a field incompatibly means a new ``.v2`` type.

What may enter is exactly what every consumer can store and process
(PostgreSQL ``text``/``timestamptz``/``jsonb``, JSON, mail headers), and the
same checks apply when a consumer parses an event, so a consumer never meets
a value its database refuses:

* **Text.** NUL and the other C0 control characters except tab, newline and
  carriage return, and lone UTF-16 surrogates, never pass. Free text a person
  wrote (``text``, names, subjects, file names, user agents, attribute
  values, alert summaries and notes) is *cleaned*: the control characters are
  removed and a lone surrogate becomes U+FFFD, so a stray byte never loses a
  complaint. Identifiers and grouping keys (ids, ``location``,
  ``touchpoint``, addresses, URLs, attribute names) are *refused* with a 422
  naming the character, because silently changing a key would merge or split
  what it identifies.
* **Times** carry a UTC offset and lie between :data:`EARLIEST` and
  :data:`LATEST` (PostgreSQL and every client can represent them in UTC);
  ``occurred_at`` of submitted feedback may also be at most one day ahead of
  now (clock skew, time zones).
* **Numbers** in ``attributes`` are integers or finite floats within
  +-(2**53 - 1), the range every JSON reader holds exactly (RFC 7493).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, Self

import orjson
from pydantic import (
    AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainValidator, StringConstraints, WithJsonSchema,
    field_validator, model_validator,
)

from shared.privacy import PSEUDONYM_PATTERN, ContactKind, pseudonym, pseudonyms_of

MAX_TEXT_CHARS = 20_000
MAX_ATTRIBUTES = 50
MAX_ATTRIBUTES_JSON_BYTES = 4096
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 7493 (I-JSON): the integers every JSON reader holds exactly
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)
MAX_FUTURE = timedelta(days=1)  # how far ahead of now a submitted occurred_at may be

# C0 control characters other than tab, newline and carriage return, and lone surrogates.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


def clean_text(value: str) -> str:
    """Free text as it may be stored: C0 controls (except tab, newline, CR) removed, lone surrogates
    replaced by U+FFFD. The one normalisation of every channel's free text."""
    if _UNSTORABLE.search(value) is None:
        return value
    return _SURROGATE.sub("\ufffd", _CONTROL.sub("", value))


def unstorable_character(value: str) -> str | None:
    """``U+XXXX`` of the first character :func:`clean_text` would change, else None."""
    found = _UNSTORABLE.search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def _cleaned(value: Any) -> Any:
    return clean_text(value) if isinstance(value, str) else value


def _refuse_unstorable(value: Any) -> Any:
    if value.__class__ is str and _UNSTORABLE.search(value) is None:  # the common case, one regex scan
        return value
    if isinstance(value, str) and (char := unstorable_character(value)) is not None:
        raise ValueError(f"must not contain control characters or lone surrogates (found {char})")
    return value


def _sane_time(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("needs a UTC offset, e.g. 2026-05-01T09:30:00+08:00")
    if not EARLIEST <= value < LATEST:  # aware comparison: no conversion that could overflow
        raise ValueError(f"must be between {EARLIEST.date().isoformat()} and {LATEST.date().isoformat()} (UTC)")
    return value


# Free text: cleaned (see the module docstring). Strict models strip whitespace after cleaning.
Text = Annotated[str, BeforeValidator(_cleaned)]
# Identifiers and keys: refused when they hold a control character or lone surrogate.
Key = Annotated[str, BeforeValidator(_refuse_unstorable)]
# A point in time every consumer can store: offset required, within EARLIEST..LATEST.
Timestamp = Annotated[datetime, AfterValidator(_sane_time)]



def bounded_key(max_length: int, *, min_length: int | None = None, pattern: str | None = None) -> Any:
    """A :data:`Key` of at most ``max_length`` characters (counted as the model stores it, after stripping).
    The constraints go inside the control-character check, where pydantic-core applies them itself:
    ``Field(max_length=...)`` on a ``Key`` would add a Python call per constraint and value (pydantic
    checks a constraint outside a before-validator in Python), which intake pays per accepted feedback."""
    return Annotated[str, StringConstraints(max_length=max_length, min_length=min_length, pattern=pattern),
                     BeforeValidator(_refuse_unstorable)]


def bounded_text(max_length: int) -> Any:
    """A :data:`Text` of at most ``max_length`` characters after cleaning (as :func:`bounded_key`)."""
    return Annotated[str, StringConstraints(max_length=max_length), BeforeValidator(_cleaned)]


Label = bounded_key(120, min_length=1)


def _query_time(value: datetime) -> datetime:
    return _sane_time(value if value.tzinfo is not None else value.replace(tzinfo=UTC))


# A time in a query parameter (``?since=``, ``?from=``): without an offset it is read as UTC; bounded like
# every stored time (a year-1 or year-9999 bound is a 422, never a database error).
QueryTime = Annotated[datetime, AfterValidator(_query_time)]
# A count or offset in a query parameter: what a PostgreSQL bigint and every JSON reader hold.
QueryCount = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]


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
    id: bounded_key(200) | None = Field(None, description="The company's own customer id. Control characters "
                           "are refused.")
    name: bounded_text(200) | None = Field(None, description="Control characters are removed.")
    email: bounded_key(320, pattern=r"^[^@\s]+@[^@\s]+$") | None = Field(None,
                              description="Control characters are refused.")
    phone: str | None = Field(None, max_length=40, pattern=r"^\+?[0-9 ()\-.]{3,40}$")

    def _contacts(self) -> tuple[tuple[ContactKind, str | None], ...]:
        """The contacts in the order they identify the customer: id, email, phone."""
        return ("id", self.id), ("email", self.email), ("phone", self.phone)

    def pseudonyms(self, privacy_key: bytes) -> list[str]:
        """Every contact's pseudonym (``shared.privacy.pseudonym``): id, email, phone, those given.
        What an erasure of this customer by any of them matches."""
        return pseudonyms_of(privacy_key, self._contacts())

    def key(self, privacy_key: bytes) -> str | None:
        """A stable identity for ordering and grouping, never a plaintext contact: the pseudonym
        of the id, else of the email, else of the phone (the same in every service)."""
        for kind, value in self._contacts():
            if value and value.strip():
                return pseudonym(privacy_key, kind, value)  # only the first: intake keys every event by it
        return None


class Attachment(Strict):
    filename: bounded_text(300) | None = Field(None, description="Control characters are removed.")
    content_type: bounded_key(200)
    size: int = Field(ge=0, le=MAX_SAFE_INTEGER)


class WebDetails(Strict):
    page_url: bounded_key(2000) | None = None
    user_agent: bounded_text(500) | None = Field(None, description="Control characters are removed.")
    form_id: bounded_key(200) | None = None


class KioskDetails(Strict):
    device_id: bounded_key(200) | None = None
    face: int | None = Field(None, ge=-10, le=10, description="The face tapped, as shown on the kiosk.")


class EmailDetails(Strict):
    message_id: bounded_key(998) | None = Field(None, description="Control characters are refused.")
    sender: bounded_key(998) | None = None
    recipient: bounded_key(998) | None = None
    subject: bounded_text(998) | None = Field(None, description="Control characters are removed.")
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)


class PhoneDetails(Strict):
    agent_id: bounded_key(200) | None = None
    call_id: bounded_key(200) | None = None
    duration_seconds: int | None = Field(None, ge=0, le=86_400)
    direction: str | None = Field(None, pattern="^(inbound|outbound)$")


class SuggestionBoxDetails(Strict):
    import_id: bounded_key(200) | None = None
    line: int | None = Field(None, ge=1, le=MAX_SAFE_INTEGER)
    card_id: bounded_key(200) | None = None


class SurveyDetails(Strict):
    survey_id: bounded_key(200)
    response_id: bounded_key(200) | None = None
    question_id: bounded_key(200) | None = None
    recovery_for_alert_id: bounded_key(200) | None = Field(
        None, description="Set when this answers a recovery survey after an alert was resolved."
    )


_DETAILS_FIELD = {
    Channel.WEB: "web",
    Channel.KIOSK: "kiosk",
    Channel.EMAIL: "email",
    Channel.PHONE: "phone",
    Channel.SUGGESTION_BOX: "suggestion_box",
    Channel.SURVEY: "survey",
}
_FOREIGN_DETAILS = {own: tuple(f for f in _DETAILS_FIELD.values() if f != own) for own in _DETAILS_FIELD.values()}

def _attribute_value(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"an attribute number must lie within +-{MAX_SAFE_INTEGER} (2**53 - 1)")
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("an attribute number must be finite (no NaN or Infinity)")
        if abs(value) > MAX_SAFE_INTEGER:
            raise ValueError(f"an attribute number must lie within +-{MAX_SAFE_INTEGER} (2**53 - 1)")
        return value
    if isinstance(value, str):
        return clean_text(value)
    raise ValueError("an attribute value is a string, a number, true, false or null")


AttributeValue = Annotated[
    str | int | float | bool | None,
    PlainValidator(_attribute_value),
    WithJsonSchema({
        "anyOf": [
            {"type": "string"},
            {"type": "integer", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
            {"type": "number", "minimum": -MAX_SAFE_INTEGER, "maximum": MAX_SAFE_INTEGER},
            {"type": "boolean"},
            {"type": "null"},
        ],
    }),
]
AttributeName = bounded_key(64, min_length=1)


class FeedbackIn(Strict):
    """One piece of feedback as a channel submits it (the body of ``POST /v1/feedback``)."""

    channel: Channel
    text: bounded_text(MAX_TEXT_CHARS) | None = Field(None, description="What the customer said, in any language. "
                              "Control characters other than tab and line breaks are removed, lone surrogates become "
                              "U+FFFD.")
    rating: Rating | None = None
    customer: Customer | None = None
    touchpoint: Label | None = Field(None, description="Where in the journey: check-in, checkout, delivery, call centre "
                                     "... Control characters are refused.")
    location: Label | None = Field(None, description="Store, branch, airport, route ... Control characters are refused.")
    occurred_at: Timestamp | None = Field(
        None, description="When the customer had the experience (ISO 8601 with offset), between 2000-01-01 and one "
        "day from now.",
    )
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="BCP 47; detected (zh/en) when absent.")
    web: WebDetails | None = None
    kiosk: KioskDetails | None = None
    email: EmailDetails | None = None
    phone: PhoneDetails | None = None
    suggestion_box: SuggestionBoxDetails | None = None
    survey: SurveyDetails | None = None
    attributes: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict,
        description=f"Free key/value pairs; at most {MAX_ATTRIBUTES} keys and {MAX_ATTRIBUTES_JSON_BYTES} bytes as JSON. "
        "Names with control characters are refused; string values are cleaned like `text`; numbers are integers or "
        f"finite floats within +-{MAX_SAFE_INTEGER}.",
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
    def _not_in_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + MAX_FUTURE:
            raise ValueError("occurred_at is more than a day in the future")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        values = self.__dict__
        if values["rating"] is None and not (values["text"] and values["text"].strip()):
            raise ValueError("feedback needs a text, a rating, or both")
        own = _DETAILS_FIELD[self.channel]
        foreign = [f for f in _FOREIGN_DETAILS[own] if values[f] is not None]
        if foreign:
            raise ValueError(
                f"details {', '.join(foreign)} do not belong to channel {self.channel.value}; use '{own}'"
            )
        return self

    def partition_key(self, privacy_key: bytes) -> str:
        """Events about one customer stay in order (``customer:<pseudonym>``, no plaintext contact);
        anonymous ones by place."""
        if self.customer and (key := self.customer.key(privacy_key)):
            return f"customer:{key}"
        return f"place:{self.location or '-'}/{self.touchpoint or '-'}"


class FeedbackReceived(FeedbackIn):
    """Payload of ``feedback.received.v1``: the feedback plus what intake adds."""

    model_config = ConfigDict(extra="ignore")  # newer producers may add fields

    id: Key
    received_at: Timestamp
    source: Key = Field(description="Name of the API key / source that submitted it.")
    language: str | None = None

    @classmethod
    def from_validated(cls, feedback: FeedbackIn, *, id: str, received_at: datetime, source: str,  # noqa: A002
                       language: str | None) -> FeedbackReceived:
        """Validated feedback plus what intake adds, without validating it again: what
        ``model_construct(**feedback fields, id=..., ...)`` builds (a test holds them equal), at a
        third of its cost — intake's hot path builds one per accepted feedback."""
        values = dict(feedback.__dict__)
        values.update(id=id, received_at=received_at, source=source, language=language)
        data = cls.__new__(cls)
        object.__setattr__(data, "__dict__", values)
        object.__setattr__(data, "__pydantic_fields_set__", set(values))
        object.__setattr__(data, "__pydantic_extra__", None)
        object.__setattr__(data, "__pydantic_private__", None)
        return data

    @field_validator("occurred_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None) -> datetime | None:
        # Checked against the clock where it was submitted: a consumer (or a replay) whose clock differs
        # must not refuse what intake accepted. EARLIEST..LATEST still holds.
        return value


class FeedbackScored(BaseModel):
    """Payload of ``feedback.scored.v1``: every feedback's MOT score, as alerts computed it."""

    model_config = ConfigDict(extra="ignore")

    feedback_id: Key
    channel: Channel
    location: Key | None = None
    touchpoint: Key | None = None
    occurred_at: Timestamp | None = None
    received_at: Timestamp
    rating: Rating | None = None
    mot: int = Field(ge=-3, le=3)
    negative: bool
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False)
    cues: list[Text] = Field(default_factory=list)
    language: Key | None = None
    escalation: list[Key] = Field(default_factory=list)


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

    alert_id: Key
    feedback_id: Key
    severity: int = Field(ge=-3, le=-1, description="The MOT score that raised it: -1, -2 or -3.")
    channel: Channel
    location: Key | None = None
    touchpoint: Key | None = None
    team: Key | None = None
    summary: Text = ""
    raised_at: Timestamp
    sla_due_at: Timestamp | None = None


class AlertUpdated(BaseModel):
    """Payload of ``alert.updated.v1``: a change of an alert's state."""

    model_config = ConfigDict(extra="ignore")

    alert_id: Key
    status: AlertStatus
    previous_status: AlertStatus | None = None
    severity: int = Field(ge=-3, le=-1)
    channel: Channel
    location: Key | None = None
    touchpoint: Key | None = None
    actor: Text | None = None
    note: Text | None = None
    at: Timestamp
    raised_at: Timestamp
    acknowledged_at: Timestamp | None = None
    resolved_at: Timestamp | None = None
    sla_breached: bool = False
    feedback_count: int = Field(1, ge=1, description="Feedback grouped into this alert so far.")


class SurveyRequested(BaseModel):
    """Payload of ``survey.requested.v1``: ask a customer a (recovery) survey."""

    model_config = ConfigDict(extra="ignore")

    request_id: Key
    kind: Key = Field("recovery", description="recovery: after an alert was resolved.")
    alert_id: Key | None = None
    customer: Customer
    language: Key | None = None
    location: Key | None = None
    touchpoint: Key | None = None
    requested_at: Timestamp


Pseudonym = Annotated[str, Field(pattern=PSEUDONYM_PATTERN, description="`shared.privacy.pseudonym` of a contact: "
                                 "`<id|email|phone>:<32 hex digits>` (HMAC-SHA256 under PRIVACY_HASH_KEY).")]


class ErasureRequested(BaseModel):
    """Payload of ``erasure.requested.v1``: erase everything about a customer (PIPL / GDPR).

    Carries the customer's contacts only as pseudonyms; every service finds its rows by them
    (and by the other contacts of the rows it finds) and deletes or anonymises them."""

    model_config = ConfigDict(extra="ignore")

    erasure_id: bounded_key(200)
    subjects: list[Pseudonym] = Field(min_length=1, max_length=30,
                                      description="Pseudonyms of the contacts the request named.")
    requested_at: Timestamp = Field(description="Events about the customer from before this are covered by the "
                                    "erasure, also when they arrive later.")


class ErasureApplied(BaseModel):
    """Payload of ``erasure.applied.v1``: what one service erased for an erasure request."""

    model_config = ConfigDict(extra="ignore")

    erasure_id: bounded_key(200)
    service: bounded_key(100)
    erased: dict[bounded_key(100), Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict, description="Per table (or place), the rows deleted or anonymised.")
    applied_at: Timestamp


class FunnelStep(StrEnum):
    """The steps of one survey invitation, each at most once (``survey.invitation.v1``)."""

    INVITED = "invited"  # the contact rules allowed it: its mail is queued (perhaps deferred)
    SKIPPED = "skipped"  # the contact rules refused it (``reason``); nothing is sent
    DELIVERED = "delivered"  # the SMTP relay accepted the mail
    OPENED = "opened"  # the personal link was opened (a mail scanner following it counts too)
    STARTED = "started"  # a first answer was saved or submitted
    COMPLETED = "completed"  # the response was stored
    UNSUBSCRIBED = "unsubscribed"  # the customer unsubscribed from this invitation's mail


class SkipReason(StrEnum):
    """Why the contact rules skipped an invitation, strongest first: an unsubscribe outranks the rest."""

    UNSUBSCRIBED = "unsubscribed"  # the address unsubscribed
    SUPPRESSED = "suppressed"  # the address bounced, complained or was erased (or listed by hand)
    NO_ADDRESS = "no_address"  # no email address mail can be sent to
    FREQUENCY = "frequency"  # N invitations in the window already
    MIN_INTERVAL = "min_interval"  # the last invitation is less than D days old
    QUIET_HOURS = "quiet_hours"  # inside the customer's quiet hours (rule mode "skip")


class SurveyInvitationStep(BaseModel):
    """Payload of ``survey.invitation.v1``: one step of a survey invitation's funnel (its id derives
    from the invitation and the step, so a step is counted once however often it is sent)."""

    model_config = ConfigDict(extra="ignore")

    invitation_id: bounded_key(200)
    survey_id: bounded_key(200)
    step: FunnelStep
    reason: SkipReason | None = Field(None, description="Why it was skipped (step `skipped` only).")
    recovery: bool = Field(False, description="A recovery survey asked after an alert was resolved.")
    location: bounded_key(120) | None = None
    touchpoint: bounded_key(120) | None = None
    at: Timestamp


class SurveyAnswer(BaseModel):
    """One answered question of a survey response."""

    model_config = ConfigDict(extra="ignore")

    question_id: bounded_key(64)
    type: bounded_key(16) = Field(description="mot, nps, csat, stars, ces, choice or text.")
    value: int | Text = Field(description="The number of a scale, the option id of a choice, the text of a text "
                              "question.")


class SurveyInvitationContext(BaseModel):
    """What a response's invitation said about the moment it asks about."""

    model_config = ConfigDict(extra="ignore")

    invitation_id: bounded_key(200)
    kind: bounded_key(32) = Field(description="api, trigger or recovery (a survey.requested.v1).")
    recovery_for_alert_id: bounded_key(200) | None = None
    customer: Customer | None = None
    locale: bounded_key(35) | None = None
    location: bounded_key(120) | None = None
    touchpoint: bounded_key(120) | None = None
    context: dict[AttributeName, AttributeValue] = Field(
        default_factory=dict, description="The free context of the invitation (order id, visit id, agent ...).")


class SurveyResponded(BaseModel):
    """Payload of ``survey.responded.v1``: a whole survey response (every answer, the version it
    answered, the invitation's context); its ``feedback.received.v1`` events are ``feedback_ids``."""

    model_config = ConfigDict(extra="ignore")

    response_id: bounded_key(200)
    survey_id: bounded_key(200)
    survey_version: int = Field(ge=1)
    language: bounded_key(35) | None = None
    answers: list[SurveyAnswer] = Field(max_length=100)
    feedback_ids: list[Key] = Field(default_factory=list, max_length=100)
    location: bounded_key(120) | None = None
    touchpoint: bounded_key(120) | None = None
    invitation: SurveyInvitationContext | None = None
    submitted_at: Timestamp
