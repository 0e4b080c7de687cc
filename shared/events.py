"""The event envelope (CloudEvents 1.0, Kafka binary mode) and the event registry.

On Kafka an event is a message whose value is the JSON ``data`` and whose
headers carry the CloudEvents attributes as ``ce_<name>`` plus
``content-type`` (the CloudEvents Kafka protocol binding, binary mode).

Every event type is registered once in :data:`EVENT_TYPES` with its topic and
its versioned pydantic payload model; producers and consumers both go through
:class:`Envelope`, so the wire format is defined in exactly one place.
"""

from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from shared.contracts import (
    AlertRaised,
    AlertUpdated,
    ErasureApplied,
    ErasureRequested,
    FeedbackReceived,
    FeedbackScored,
    SurveyInvitationStep,
    SurveyRequested,
    SurveyResponded,
)
from shared.errors import PermanentError

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"

P = TypeVar("P", bound=BaseModel)


@dataclass(frozen=True)
class EventType(Generic[P]):
    """One versioned event type: its CloudEvents ``type``, its topic, its payload model and
    the services that produce it (``producers``): a consumer trusts an event of this type
    only from their sources (:attr:`sources`) and dead-letters any other."""

    type: str
    topic: str
    model: type[P]
    producers: tuple[str, ...] = ()

    @property
    def sources(self) -> frozenset[str]:
        """The CloudEvents sources of its producers (``/keymoment/<service>``)."""
        return frozenset(event_source(p) for p in self.producers)


FEEDBACK_RECEIVED = EventType("com.keymoment.feedback.received.v1", "feedback.received.v1", FeedbackReceived,
                              producers=("intake", "survey"))
FEEDBACK_SCORED = EventType("com.keymoment.feedback.scored.v1", "feedback.scored.v1", FeedbackScored,
                            producers=("alerts",))
ALERT_RAISED = EventType("com.keymoment.alert.raised.v1", "alert.raised.v1", AlertRaised, producers=("alerts",))
ALERT_UPDATED = EventType("com.keymoment.alert.updated.v1", "alert.updated.v1", AlertUpdated, producers=("alerts",))
SURVEY_REQUESTED = EventType("com.keymoment.survey.requested.v1", "survey.requested.v1", SurveyRequested,
                             producers=("alerts",))
SURVEY_INVITATION = EventType("com.keymoment.survey.invitation.v1", "survey.invitation.v1", SurveyInvitationStep,
                              producers=("survey",))
SURVEY_RESPONDED = EventType("com.keymoment.survey.responded.v1", "survey.responded.v1", SurveyResponded,
                             producers=("survey",))
ERASURE_REQUESTED = EventType("com.keymoment.erasure.requested.v1", "erasure.requested.v1", ErasureRequested,
                              producers=("reporting",))
ERASURE_APPLIED = EventType("com.keymoment.erasure.applied.v1", "erasure.applied.v1", ErasureApplied,
                            producers=("intake", "survey", "alerts", "reporting"))

EVENT_TYPES: dict[str, EventType] = {
    et.type: et
    for et in (FEEDBACK_RECEIVED, FEEDBACK_SCORED, ALERT_RAISED, ALERT_UPDATED, SURVEY_REQUESTED, SURVEY_INVITATION,
               SURVEY_RESPONDED, ERASURE_REQUESTED, ERASURE_APPLIED)
}


def event_source(service: str) -> str:
    """The CloudEvents ``source`` of every event a service publishes: ``/keymoment/<service>``."""
    return f"/keymoment/{service}"


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


class EnvelopeError(PermanentError, ValueError):
    """A message that is not a valid Keymoment event; it can never succeed.

    ``summary`` says what is wrong without quoting the message's content (field paths and error kinds
    only), so it may be logged; ``str()`` is the full error, kept with the dead letter."""

    def __init__(self, message: str, *, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary or message


# Header values repeat (a few sources and types; a batch shares one time): encode each once.
_encoded = functools.lru_cache(maxsize=1024)(str.encode)


@functools.lru_cache(maxsize=1024)
def _isoformat(time: datetime) -> bytes:
    return time.isoformat().encode()


@dataclass(frozen=True)
class Envelope:
    """A CloudEvents 1.0 event whose data is a registered payload model."""

    id: str
    source: str
    type: str
    time: datetime
    data: BaseModel
    subject: str | None = None
    key: str | None = None
    specversion: str = SPEC_VERSION
    datacontenttype: str = CONTENT_TYPE

    @classmethod
    def new(
        cls,
        event_type: EventType[P],
        data: P,
        *,
        source: str,
        key: str | None,
        subject: str | None = None,
        id: str | None = None,
        time: datetime | None = None,
    ) -> Envelope:
        """Build an event. ``key`` decides the partition: events that must stay
        in order (about one customer, one alert) share it."""
        return cls(
            id=id or str(uuid.uuid4()),
            source=source,
            type=event_type.type,
            time=time or datetime.now(UTC),
            data=data,
            subject=subject,
            key=key,
        )

    @property
    def event_type(self) -> EventType:
        return EVENT_TYPES[self.type]

    def headers(self) -> list[tuple[str, bytes]]:
        headers = [
            ("ce_specversion", _encoded(self.specversion)),
            ("ce_id", self.id.encode()),
            ("ce_source", _encoded(self.source)),
            ("ce_type", _encoded(self.type)),
            ("ce_time", _isoformat(self.time)),
            ("content-type", _encoded(self.datacontenttype)),
        ]
        if self.subject is not None:
            headers.append(("ce_subject", self.subject.encode()))
        return headers

    def value(self) -> bytes:
        return self.data.model_dump_json(exclude_none=True).encode()

    def key_bytes(self) -> bytes | None:
        return self.key.encode() if self.key is not None else None

    @classmethod
    def from_kafka(
        cls, *, headers: list[tuple[str, bytes]] | tuple, key: bytes | None, value: bytes | None
    ) -> Envelope:
        """Parse a consumed message; raises :class:`EnvelopeError` for anything
        that is not a valid event of a registered type (a dead letter)."""
        attrs: dict[str, str] = {}
        for name, raw in headers or ():
            try:
                attrs[name] = raw.decode() if raw is not None else ""
            except UnicodeDecodeError as exc:
                raise EnvelopeError(f"header {name} is not UTF-8") from exc
        missing = [a for a in ("ce_id", "ce_source", "ce_type", "ce_specversion") if not attrs.get(a)]
        if missing:
            raise EnvelopeError(f"missing CloudEvents headers: {', '.join(missing)}")
        if attrs["ce_specversion"] != SPEC_VERSION:
            raise EnvelopeError(f"unsupported specversion {attrs['ce_specversion']!r}")
        event_type = EVENT_TYPES.get(attrs["ce_type"])
        if event_type is None:
            raise EnvelopeError(f"unknown event type {attrs['ce_type']!r}")
        content_type = attrs.get("content-type", CONTENT_TYPE)
        if not content_type.startswith(CONTENT_TYPE):
            raise EnvelopeError(f"unsupported content-type {content_type!r}")
        try:
            time = datetime.fromisoformat(attrs["ce_time"]) if attrs.get("ce_time") else datetime.now(UTC)
        except ValueError as exc:
            raise EnvelopeError(f"ce_time is not an ISO 8601 timestamp: {attrs['ce_time']!r}") from exc
        if value is None:
            raise EnvelopeError("message has no value")
        try:
            data = event_type.model.model_validate_json(value)
        except ValidationError as exc:
            fields = ", ".join(f"{'.'.join(map(str, e['loc'])) or '(value)'} ({e['type']})" for e in exc.errors())
            raise EnvelopeError(f"invalid {event_type.type} data: {exc}",
                                summary=f"invalid {event_type.type} data: {fields}") from exc
        return cls(
            id=attrs["ce_id"],
            source=attrs["ce_source"],
            type=event_type.type,
            time=time,
            data=data,
            subject=attrs.get("ce_subject"),
            key=key.decode("utf-8", "replace") if key is not None else None,
            specversion=attrs["ce_specversion"],
            datacontenttype=content_type,
        )
