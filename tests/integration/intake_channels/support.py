"""A downstream consumer for the channel tests: reads ``feedback.received.v1``
through the real broker up to its end offsets and decodes each event."""

from __future__ import annotations

from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope
from tests.support.kafka import read_topic


def intake_settings(service_env: dict, **overrides):
    from services.intake.settings import IntakeSettings

    return IntakeSettings(**service_env, **overrides)


def dev_key(intake) -> str:
    return intake.runtime.settings.dev_api_key.get_secret_value()


async def received(bootstrap: str, settings, *, timeout: float = 20.0) -> list[FeedbackReceived]:
    """Every ``feedback.received.v1`` event on the test's topic up to now (in-order per partition).

    Reads up to each partition's end offset, so whatever intake acknowledged
    before the call is included and nothing needs a fixed wait."""
    messages = await read_topic(bootstrap, settings.topic(FEEDBACK_RECEIVED.topic), at_least=0, timeout=timeout)
    return [Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value).data for m in messages]
