"""The input contract (shared/contracts.py) on every way in and on the events consumers parse."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.intake.suggestion_box import parse_csv
from shared.contracts import (
    AlertRaised, FeedbackIn, FeedbackReceived, FeedbackScored, clean_text, unstorable_character,
)
from shared.events import FEEDBACK_RECEIVED, Envelope, EnvelopeError


@pytest.mark.parametrize(("raw", "clean"), [
    ("plain 中文 😡", "plain 中文 😡"),
    ("a\x00b\x01c\x08d\x0be\x0cf\x0eg\x1fh", "abcdefgh"),
    ("tab\tnew\nline\r\nkept", "tab\tnew\nline\r\nkept"),
    ("lone \ud800 and \udfff surrogates", "lone \ufffd and \ufffd surrogates"),
    ("\x7f and \x85 are not C0: kept", "\x7f and \x85 are not C0: kept"),
])
def test_clean_text(raw, clean):
    assert clean_text(raw) == clean
    assert unstorable_character(clean) is None


def test_unstorable_character_names_the_first_one():
    assert unstorable_character("ok\x1bthen\x00") == "U+001B"
    assert unstorable_character("x\udc80") == "U+DC80"


def test_free_text_is_cleaned_keys_are_refused():
    feedback = FeedbackIn(channel="web", text="\x00 排队\x00太久 \x07", customer={"name": "王\x00芳"},
                          web={"user_agent": "UA\x00/1"}, attributes={"note": "a\x00b"})
    assert (feedback.text, feedback.customer.name) == ("排队太久", "王芳")
    assert (feedback.web.user_agent, feedback.attributes["note"]) == ("UA/1", "ab")
    for bad in ({"location": "a\x00"}, {"touchpoint": "\ud800"}, {"customer": {"id": "C\x01"}},
                {"attributes": {"k\x00": 1}}, {"web": {"page_url": "https://x/\x00"}}):
        with pytest.raises(ValidationError, match="must not contain control characters"):
            FeedbackIn(channel="web", text="x", **bad)


def test_text_of_only_control_characters_is_no_text():
    with pytest.raises(ValidationError, match="needs a text, a rating"):
        FeedbackIn(channel="web", text="\x00\x01 \x02")


@pytest.mark.parametrize("when", [
    "1999-12-31T23:59:59+00:00", "2000-01-01T07:59:59+08:00", "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00+01:00", "2100-01-01T00:00:00Z",
])
def test_times_outside_2000_to_2100_are_refused(when):
    with pytest.raises(ValidationError, match="between 2000-01-01 and 2100-01-01"):
        FeedbackIn(channel="web", text="x", occurred_at=when)


def test_occurred_at_at_most_a_day_ahead_but_events_are_not_judged_by_the_consumer_clock():
    soon, later = datetime.now(UTC) + timedelta(hours=23), datetime.now(UTC) + timedelta(days=2)
    assert FeedbackIn(channel="web", text="x", occurred_at=soon).occurred_at == soon
    with pytest.raises(ValidationError, match="more than a day in the future"):
        FeedbackIn(channel="web", text="x", occurred_at=later)
    # A consumer whose clock is behind the producer's must not refuse what intake accepted.
    event = FeedbackReceived(channel="web", text="x", occurred_at=later, id="f-1", received_at=datetime.now(UTC),
                             source="dev")
    assert event.occurred_at == later


@pytest.mark.parametrize(("value", "words"), [
    (18446744073709551616, "2**53 - 1"), (-(2**53), "2**53 - 1"), (float("nan"), "finite"),
    (float("inf"), "finite"), (1e19, "2**53 - 1"), ([1, 2], "a string, a number"), ({"a": 1}, "a string, a number"),
])
def test_attribute_numbers_are_bounded(value, words):
    with pytest.raises(ValidationError, match="attributes.n") as refused:
        FeedbackIn(channel="web", text="x", attributes={"n": value})
    assert words in str(refused.value)


def test_attribute_values_in_range_are_kept_with_their_types():
    attributes = {"i": 2**53 - 1, "f": -1.5, "b": True, "none": None, "s": "SO-1"}
    assert FeedbackIn(channel="web", text="x", attributes=attributes).attributes == attributes


def test_a_consumer_dead_letters_what_postgresql_would_refuse_and_cleans_free_text():
    base = {"id": "f-1", "channel": "web", "text": "x", "received_at": "2026-05-01T00:00:00Z", "source": "dev"}
    headers = Envelope.new(FEEDBACK_RECEIVED, FeedbackReceived.model_validate(base), source="/keymoment/intake",
                           key=None, id="f-1").headers()

    def envelope(**data):  # the bytes an older or foreign producer might have written
        return Envelope.from_kafka(headers=headers, key=None, value=json.dumps({**base, **data}).encode())

    assert envelope(text="排队\x00太久").data.text == "排队太久"
    for bad in ({"location": "a\x00b"}, {"occurred_at": "9999-12-31T23:59:59-14:00"}, {"id": "f\x00"},
                {"received_at": "1970-01-01T00:00:00Z"}):
        with pytest.raises(EnvelopeError):
            envelope(**bad)


def test_scored_and_alert_events_follow_the_contract():
    scored = {"feedback_id": "f", "channel": "web", "received_at": "2026-05-01T00:00:00Z", "mot": -3,
              "negative": True, "confidence": 0.9}
    assert FeedbackScored.model_validate(scored).mot == -3
    with pytest.raises(ValidationError):
        FeedbackScored.model_validate({**scored, "confidence": float("nan")})
    with pytest.raises(ValidationError):
        FeedbackScored.model_validate({**scored, "location": "x\x00"})
    raised = AlertRaised.model_validate({"alert_id": "a", "feedback_id": "f", "severity": -3, "channel": "web",
                                         "summary": "排队\x00太久", "raised_at": "2026-05-01T00:00:00Z"})
    assert raised.summary == "排队太久"


def test_csv_cards_follow_the_contract():
    csv = ("日期,地点,内容,评分\n"
           "2026-05-01,朝阳门支行,排队\x00太久,2\n"
           "2026-05-01,朝阳\x00门支行,地点坏了,2\n"
           "9999-12-31,西单支行,日期太远,3\n").encode()
    parsed = parse_csv(csv, source_key="k1", timezone="Asia/Shanghai")
    assert [c.feedback.text for c in parsed.cards] == ["排队太久"]
    assert [r.line for r in parsed.rejected] == [3, 4]
    assert "U+0000" in parsed.rejected[0].errors[0]
    assert "2000-01-01" in parsed.rejected[1].errors[0]


def _python_functions(schema) -> list:
    """Every Python function a pydantic-core schema calls, at any depth."""
    found = []
    if isinstance(schema, dict):
        function = schema.get("function")
        if isinstance(function, dict) and callable(function.get("function")):
            found.append(function["function"])
        for value in schema.values():
            found += _python_functions(value)
    elif isinstance(schema, list | tuple):
        for value in schema:
            found += _python_functions(value)
    return found


@pytest.mark.parametrize("model", [FeedbackIn, FeedbackReceived])
def test_length_limits_of_submitted_feedback_are_checked_by_pydantic_core_not_by_python_calls(model):
    """Intake validates every accepted feedback: a length limit written as ``Field(max_length=...)`` on a
    type with a before-validator (Key, Text) becomes one Python call per value (it cost intake a tenth of
    its batch throughput), where ``bounded_key``/``bounded_text`` leave it to pydantic-core."""
    names = {getattr(f, "__qualname__", repr(f)) for f in _python_functions(model.__pydantic_core_schema__)}
    assert names, "the schema walk finds the contract's own validators"
    assert "_refuse_unstorable" in names and "_cleaned" in names
    assert not {n for n in names if "length_validator" in n}, names


def test_bounded_keys_and_texts_still_refuse_too_long_and_clean_or_refuse_control_characters():
    base = {"channel": "kiosk", "rating": {"scale": "mot", "value": 1}}
    with pytest.raises(ValidationError, match="at most 120 characters"):
        FeedbackIn.model_validate({**base, "location": "x" * 121})
    assert FeedbackIn.model_validate({**base, "location": "  " + "x" * 120 + "  "}).location == "x" * 120
    with pytest.raises(ValidationError, match="must not contain control characters"):
        FeedbackIn.model_validate({**base, "location": "a\x00b"})
    with pytest.raises(ValidationError, match="at least 1 character"):
        FeedbackIn.model_validate({**base, "location": "   "})
    with pytest.raises(ValidationError, match="at most 200 characters"):
        FeedbackIn.model_validate({**base, "customer": {"name": "n" * 201}})
    assert FeedbackIn.model_validate({**base, "customer": {"name": "a\x00b"}}).customer.name == "ab"
    with pytest.raises(ValidationError, match="should match pattern"):
        FeedbackIn.model_validate({**base, "customer": {"email": "not-an-address"}})
