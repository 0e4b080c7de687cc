"""The CloudEvents envelope: binary-mode headers round-trip, and everything
that is not a valid registered event is refused with a reason."""

from datetime import UTC, datetime

import pytest

from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, Envelope, EnvelopeError


def make() -> Envelope:
    data = FeedbackReceived(
        id="f-1", channel="email", text="行李丢了三天没人回电话", received_at=datetime(2026, 5, 1, tzinfo=UTC),
        source="mailbox", customer={"email": "li@example.cn"},
    )
    return Envelope.new(FEEDBACK_RECEIVED, data, source="/keymoment/intake", key="customer:email:li@example.cn",
                        subject="f-1", id="f-1")


def test_binary_mode_round_trip():
    ev = make()
    headers = dict(ev.headers())
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_type"] == b"com.keymoment.feedback.received.v1"
    assert headers["ce_id"] == b"f-1" and headers["ce_subject"] == b"f-1"
    assert headers["content-type"] == b"application/json"
    back = Envelope.from_kafka(headers=ev.headers(), key=ev.key_bytes(), value=ev.value())
    assert back.id == "f-1" and back.key == "customer:email:li@example.cn"
    assert back.data.text == "行李丢了三天没人回电话"
    assert back.time == ev.time


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h: [x for x in h if x[0] != "ce_id"], "missing CloudEvents headers: ce_id"),
        (lambda h: [(k, b"0.3" if k == "ce_specversion" else v) for k, v in h], "unsupported specversion"),
        (lambda h: [(k, b"com.example.other" if k == "ce_type" else v) for k, v in h], "unknown event type"),
        (lambda h: [(k, b"text/plain" if k == "content-type" else v) for k, v in h], "unsupported content-type"),
        (lambda h: [(k, b"yesterday" if k == "ce_time" else v) for k, v in h], "ce_time is not an ISO 8601"),
    ],
)
def test_bad_headers_are_refused_with_a_reason(mutate, reason):
    ev = make()
    with pytest.raises(EnvelopeError, match=reason):
        Envelope.from_kafka(headers=mutate(ev.headers()), key=None, value=ev.value())


def test_bad_payload_is_refused():
    ev = make()
    with pytest.raises(EnvelopeError, match="invalid com.keymoment.feedback.received.v1 data"):
        Envelope.from_kafka(headers=ev.headers(), key=None, value=b'{"id": "x"}')
