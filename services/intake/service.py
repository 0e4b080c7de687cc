"""Intake use cases: plain async functions, no FastAPI, no aiokafka.

Feedback becomes durable in one go per request: acknowledged by Kafka
(``acks=all``), or committed to the outbox while Kafka is away. Ids are
derived from the API key and the client's idempotency key, so a retry
produces the same event id and every consumer drops the duplicate; no
database lookup is needed on the hot path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.intake.keys import KeyStore, Principal
from services.intake.language import detect
from services.intake.settings import IntakeSettings
from shared.clock import Clock, SystemClock
from shared.contracts import FeedbackIn, FeedbackReceived
from shared.errors import NotDurable
from shared.events import FEEDBACK_RECEIVED, Envelope, event_source
from shared.outbox import DurablePublish

SOURCE = event_source(IntakeSettings.service_name)
"""The CloudEvents ``source`` of intake's events."""

# Namespace of the ids derived from (API key id, idempotency key). Never change it:
# a retry across a deploy must map to the same id.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c2a4e-3b8d-5e7f-9a10-4c2d6b8e0f13")
MAX_IDEMPOTENCY_KEY = 200  # characters

__all__ = ["Context", "FeedbackSink", "NotDurable", "accept", "accept_many", "feedback_id_for", "to_event"]


@dataclass(frozen=True)
class FeedbackSink:
    """Where accepted feedback goes: ``publish`` makes events durable (the runtime's
    ``publish_durably``: a Kafka acknowledgement, else an outbox row) on ``topic``, keyed by
    the customer's pseudonym under ``privacy_key`` (PRIVACY_HASH_KEY)."""

    publish: DurablePublish
    topic: str
    privacy_key: bytes


@dataclass(frozen=True)
class Context:
    """Intake's components, built whole in ``create_app``."""

    settings: IntakeSettings
    keys: KeyStore
    sink: FeedbackSink
    clock: Clock = field(default_factory=SystemClock)


class _RandomIds:
    """Version 4 UUIDs from OS randomness read 4 KiB at a time: one syscall per 256
    ids instead of one per id (it showed in profiles under load), and the 256 formatted
    together (``uuid.UUID`` costs about 3 µs an id, a tenth of intake's work per batched
    feedback). A forked child drops what is left, so no two processes hand out the same ids."""

    def __init__(self) -> None:
        self._ready: list[str] = []
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._ready = []

    def __call__(self) -> str:
        if not self._ready:
            self._ready = _uuid4s(os.urandom(4096))
        return self._ready.pop()


def _uuid4s(random: bytes) -> list[str]:
    """Version 4 (RFC 9562) UUIDs in canonical form, one per 16 bytes of ``random``."""
    raw = bytearray(random)
    raw[6::16] = bytes(b & 0x0F | 0x40 for b in raw[6::16])  # version 4
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # variant 10xx
    h = raw.hex()
    return [f"{h[i:i + 8]}-{h[i + 8:i + 12]}-{h[i + 12:i + 16]}-{h[i + 16:i + 20]}-{h[i + 20:i + 32]}"
            for i in range(0, len(h), 32)]


_random_id = _RandomIds()


def feedback_id_for(principal: Principal, idempotency_key: str | None) -> str:
    """The feedback's id: derived from the key and idempotency key when given, else random."""
    if idempotency_key:
        return str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{principal.key_id}:{idempotency_key}"))
    return _random_id()


def to_event(
    feedback: FeedbackIn, *, feedback_id: str, source: str, privacy_key: bytes, received_at: datetime | None = None
) -> Envelope:
    """The ``feedback.received.v1`` event of validated feedback (language detected when absent),
    keyed by the customer's pseudonym (``privacy_key``: PRIVACY_HASH_KEY), never a plaintext contact."""
    received_at = received_at or datetime.now(UTC)
    # Already validated as FeedbackIn: built without validating the same data twice.
    data = FeedbackReceived.from_validated(feedback, id=feedback_id, received_at=received_at, source=source,
                                           language=feedback.language or detect(feedback.text))
    return Envelope.new(
        FEEDBACK_RECEIVED, data, source=SOURCE, key=feedback.partition_key(privacy_key), subject=feedback_id,
        id=feedback_id, time=received_at,
    )


async def accept_many(
    feedback_items: Sequence[FeedbackIn],
    *,
    principal: Principal,
    idempotency_keys: Sequence[str | None] | None = None,
    sink: FeedbackSink,
) -> list[str]:
    """Make a list of validated feedback durable in one go; returns their ids in order.

    Channel permission is the caller's check (``principal.require_channel``).
    Raises :class:`NotDurable` when neither Kafka nor the outbox took them:
    then nothing may be reported as accepted.
    """
    if idempotency_keys is not None and len(idempotency_keys) != len(feedback_items):
        raise ValueError("idempotency_keys must match feedback_items one to one")
    if not feedback_items:
        return []
    now = datetime.now(UTC)
    keys = idempotency_keys or [None] * len(feedback_items)
    ids = [feedback_id_for(principal, k) for k in keys]
    events = [
        (sink.topic, to_event(f, feedback_id=i, source=principal.name, privacy_key=sink.privacy_key, received_at=now))
        for f, i in zip(feedback_items, ids, strict=True)
    ]
    await sink.publish(events)
    return ids


async def accept(
    feedback: FeedbackIn, *, principal: Principal, idempotency_key: str | None = None, sink: FeedbackSink
) -> str:
    """Make one feedback durable; returns its id."""
    return (await accept_many([feedback], principal=principal, idempotency_keys=[idempotency_key], sink=sink))[0]
