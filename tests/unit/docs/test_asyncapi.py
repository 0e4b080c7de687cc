"""deploy/asyncapi.yaml is what `keymoment asyncapi` generates from the event models,
is a valid AsyncAPI 3.0.0 document (the official JSON Schema, vendored), and its
schemas describe the events the code really writes."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml

from keymoment.asyncapi import DLQ_HEADERS, DOCUMENT, build, endpoints, render, runtimes
from shared.privacy import pseudonym
from shared.contracts import (AlertRaised, AlertUpdated, ErasureApplied, ErasureRequested, FeedbackReceived,
                              FeedbackScored, SurveyRequested)
from shared.events import (
    ALERT_RAISED,
    ALERT_UPDATED,
    ERASURE_APPLIED,
    ERASURE_REQUESTED,
    EVENT_TYPES,
    FEEDBACK_RECEIVED,
    FEEDBACK_SCORED,
    SURVEY_INVITATION,
    SURVEY_REQUESTED,
    SURVEY_RESPONDED,
    Envelope,
    dlq_topic,
)

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "tests" / "data" / "asyncapi" / "asyncapi-3.0.0.schema.json"
NOW = datetime(2026, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def document() -> dict:
    return yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


def test_the_document_is_generated_from_the_models():
    assert DOCUMENT.read_text(encoding="utf-8") == render(), (
        "deploy/asyncapi.yaml is stale: run `.venv/bin/keymoment asyncapi --write`"
    )


def _asyncapi_errors(doc: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in jsonschema.Draft7Validator(schema).iter_errors(doc)]


def test_the_document_is_valid_asyncapi_3(document):
    assert document["asyncapi"] == "3.0.0"
    assert _asyncapi_errors(document) == []


def test_the_asyncapi_schema_catches_mistakes(document):
    """The vendored schema really checks channels, bindings and payload schemas (not a schema that allows all)."""
    broken = json.loads(json.dumps(document))
    broken["channels"]["feedbackReceivedV1"]["adress"] = "feedback.received.v1"
    broken["components"]["messages"]["alertRaisedV1"]["bindings"]["kafka"]["kee"] = {"type": "string"}
    broken["components"]["schemas"]["Rating"]["type"] = "objekt"
    assert len(_asyncapi_errors(broken)) == 3


def test_every_topic_and_its_dead_letters_are_channels(document):
    addresses = {channel["address"] for channel in document["channels"].values()}
    topics, ends = {et.topic for et in EVENT_TYPES.values()}, endpoints()
    assert topics | {dlq_topic(t) for t in topics if ends[t]["receive"]} == addresses


def _samples() -> list[Envelope]:
    feedback = FeedbackReceived(
        id="f-1", channel="kiosk", rating={"scale": "mot", "value": -2}, text="排队太久了，收银台只开了一个",
        customer={"email": "Li.Wei@Example.cn"}, location="store-12", touchpoint="checkout", received_at=NOW,
        source="kiosk-store-12", language="zh-CN", kiosk={"device_id": "k-12"}, attributes={"lane": 3},
    )
    anonymous = FeedbackReceived(id="f-2", channel="web", text="Great", received_at=NOW, source="web")
    scored = FeedbackScored(feedback_id="f-1", channel="kiosk", received_at=NOW, mot=-2, negative=True,
                            confidence=0.9, cues=["queue"], rating={"scale": "mot", "value": -2})
    raised = AlertRaised(alert_id="a-1", feedback_id="f-1", severity=-2, channel="kiosk", raised_at=NOW,
                         summary="排队太久了", sla_due_at=NOW)
    updated = AlertUpdated(alert_id="a-1", status="resolved", previous_status="action", severity=-2, channel="kiosk",
                           at=NOW, raised_at=NOW, resolved_at=NOW, feedback_count=2)
    survey = SurveyRequested(request_id="r-1", alert_id="a-1", customer={"email": "li.wei@example.cn"},
                             requested_at=NOW)
    key = b"k" * 32
    erasure = ErasureRequested(erasure_id="e-1", subjects=[pseudonym(key, "email", "li.wei@example.cn"),
                                                           pseudonym(key, "phone", "+86 138 0013 8000")],
                               requested_at=NOW)
    applied = ErasureApplied(erasure_id="e-1", service="alerts", erased={"alerts": 1, "customer_moments": 3},
                             applied_at=NOW)
    return [
        Envelope.new(FEEDBACK_RECEIVED, feedback, source="/keymoment/intake", key=feedback.partition_key(key),
                     subject=feedback.id),
        Envelope.new(FEEDBACK_RECEIVED, anonymous, source="/keymoment/intake", key=anonymous.partition_key(key)),
        Envelope.new(FEEDBACK_SCORED, scored, source="/keymoment/alerts", key=feedback.partition_key(key), subject="f-1"),
        Envelope.new(ERASURE_REQUESTED, erasure, source="/keymoment/reporting", key="erasure:e-1", subject="e-1"),
        Envelope.new(ERASURE_APPLIED, applied, source="/keymoment/alerts", key="erasure:e-1", subject="e-1"),
        Envelope.new(ALERT_RAISED, raised, source="/keymoment/alerts", key="alert:a-1", subject="a-1"),
        Envelope.new(ALERT_UPDATED, updated, source="/keymoment/alerts", key="alert:a-1", subject="a-1"),
        Envelope.new(SURVEY_REQUESTED, survey, source="/keymoment/alerts", key="alert:a-1", subject="a-1"),
    ]


def _message(document: dict, event: Envelope) -> dict:
    (message,) = [m for m in document["components"]["messages"].values() if m["name"] == event.type]
    return message


def _validator(document: dict, schema: dict) -> jsonschema.Draft202012Validator:
    """A schema of the document, its ``#/components/schemas/...`` references resolvable."""
    return jsonschema.Draft202012Validator({**schema, "components": document["components"]},
                                           format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("event", _samples(), ids=lambda e: f"{e.type}:{e.key}")
def test_what_the_code_writes_matches_the_document(document, event):
    message = _message(document, event)
    headers = {name: value.decode() for name, value in event.headers()}
    assert list(_validator(document, message["headers"]).iter_errors(headers)) == []
    assert list(_validator(document, message["payload"]).iter_errors(json.loads(event.value()))) == []
    assert re.fullmatch(message["bindings"]["kafka"]["key"]["pattern"], event.key)


def test_payload_schemas_refuse_what_consumers_refuse(document):
    event = _samples()[0]
    message = _message(document, event)
    payload = json.loads(event.value())
    for broken in ({**payload, "channel": "fax"}, {k: v for k, v in payload.items() if k != "received_at"},
                   {**payload, "rating": {"scale": "mot", "value": "bad"}}):
        assert list(_validator(document, message["payload"]).iter_errors(broken)), broken


def test_dead_letter_headers_are_the_ones_the_consumer_runner_writes():
    runner = (ROOT / "shared" / "kafka.py").read_text(encoding="utf-8")
    assert set(re.findall(r'"(dlq_[a-z_]+)"', runner)) == set(DLQ_HEADERS)


def test_senders_and_receivers_are_what_the_runtimes_declare():
    runtimes_ = runtimes()
    found = endpoints(runtimes_)
    for name, runtime in runtimes_.items():
        assert {et.topic for et in runtime.produces} == {t for t, ends in found.items() if name in ends["send"]}
        assert {et.topic for et in runtime.consumes} == {t for t, ends in found.items() if name in ends["receive"]}
    assert found["feedback.received.v1"]["send"] >= {"intake"}


def test_an_event_nobody_produces_is_an_error_and_unconsumed_topics_have_no_dead_letters():
    only_intake = {"intake": SimpleNamespace(produces=[FEEDBACK_RECEIVED], consumes=[])}
    with pytest.raises(RuntimeError, match="no service produces .*alert.raised.v1"):
        endpoints(only_intake)
    alerts = SimpleNamespace(produces=[FEEDBACK_SCORED, ALERT_RAISED, ALERT_UPDATED, SURVEY_REQUESTED],
                             consumes=[FEEDBACK_RECEIVED])
    survey = SimpleNamespace(produces=[SURVEY_INVITATION, SURVEY_RESPONDED], consumes=[])  # what no other sends
    eraser = SimpleNamespace(produces=[ERASURE_REQUESTED, ERASURE_APPLIED], consumes=[])
    doc = build({**only_intake, "alerts": alerts, "survey": survey, "reporting": eraser})
    assert "feedbackReceivedV1Dlq" in doc["channels"] and "alertRaisedV1Dlq" not in doc["channels"]
    assert {op["action"] for op in doc["operations"].values()} == {"send", "receive"}
    assert "alertsReceivesFeedbackReceivedV1" in doc["operations"]
