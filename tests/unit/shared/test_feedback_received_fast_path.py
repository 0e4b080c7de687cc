"""``FeedbackReceived.from_validated`` (intake's hot path) builds exactly what pydantic's
``model_construct`` builds from the same validated feedback, for any feedback intake accepts."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from shared.contracts import FeedbackIn, FeedbackReceived
from tests.integration.contract.test_input_contract import feedback_payloads

AT = datetime(2026, 12, 1, 1, 2, 3, 456789, tzinfo=UTC)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=feedback_payloads())
def test_from_validated_is_model_construct(payload: dict) -> None:
    try:
        feedback = FeedbackIn.model_validate(payload)
    except ValidationError:
        return
    language = feedback.language or "zh"
    fast = FeedbackReceived.from_validated(feedback, id="f-1", received_at=AT, source="kiosk-key", language=language)
    slow = FeedbackReceived.model_construct(**{**feedback.__dict__, "language": language}, id="f-1",
                                            received_at=AT, source="kiosk-key")
    assert fast == slow
    assert fast.model_fields_set == slow.model_fields_set
    assert fast.model_dump_json(exclude_none=True) == slow.model_dump_json(exclude_none=True)
    # and every consumer reads it back as the same feedback
    assert FeedbackReceived.model_validate_json(fast.model_dump_json(exclude_none=True)).model_dump() == \
        FeedbackReceived.model_validate_json(slow.model_dump_json(exclude_none=True)).model_dump()
