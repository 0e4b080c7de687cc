"""Unit tests of intake's pure pieces: language detection, key format, token
bucket, principals, idempotent ids and the error shape."""

from __future__ import annotations

import math
import os
import uuid

import pytest
from pydantic import ValidationError

from services.intake.api.errors import field_errors
from services.intake.keys import Forbidden, Principal, RateLimited, TokenBucket, hash_key, new_key, split_key
from services.intake.language import detect
from services.intake.service import feedback_id_for, to_event
from shared.privacy import pseudonym
from shared.contracts import FeedbackIn, FeedbackReceived


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("排队等了四十分钟，店员态度很冷淡。", "zh"),
        ("排隊等了四十分鐘", "zh"),
        ("WiFi 太慢了", "zh"),
        ("The checkout took forever.", "en"),
        ("Great app, 但是 login 有问题 sometimes", "zh"),
        ("Great staff, friendly service, would come again 好", "en"),
        ("スタッフの対応がとても良かったです", "ja"),
        ("직원이 친절했어요", "ko"),
        ("12345 !!!", None),
        ("", None),
        (None, None),
    ],
)
def test_language_detection(text, expected):
    assert detect(text) == expected



def test_key_format_and_hash():
    key_id, key = new_key()
    assert key.startswith(f"km_{key_id}_") and "_" not in key_id
    assert split_key(key) == key_id
    assert split_key("km_dev_abc_def-ghi") == "dev"
    for bad in ("", "nope", "km_", "km_abc", "km__secret", "km_abc_", "x" * 300):
        assert split_key(bad) is None
    assert hash_key(key) != hash_key(key + "x") and len(hash_key(key)) == 32


def test_token_bucket_grants_burst_then_says_how_long_to_wait(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("services.intake.keys.time.monotonic", lambda: now[0])
    bucket = TokenBucket(rate=2.0, burst=3)
    assert [bucket.take() for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take() == pytest.approx(0.5)
    now[0] += 0.5
    assert bucket.take() == 0.0
    assert math.isinf(bucket.take(4))  # more than the burst can ever hold
    now[0] += 100
    assert bucket.take(3) == 0.0 and bucket.tokens == 0  # refill is capped at the burst


def test_principal_channels_origins_and_rate():
    p = Principal("k1", "kiosk-store-12", frozenset({"kiosk"}), frozenset({"https://k.example.com"}),
                  bucket=TokenBucket(1.0, 1))
    p.require_channel("kiosk")
    with pytest.raises(Forbidden, match="channel 'web'"):
        p.require_channel("web")
    assert p.allows_origin("https://k.example.com") and not p.allows_origin("https://evil.example")
    p.charge()
    with pytest.raises(RateLimited) as exc:
        p.charge()
    assert exc.value.status == 429 and 0 < exc.value.retry_after <= 1
    internal = Principal.internal("smtp")
    internal.require_channel("email")
    internal.charge(10_000)  # unlimited


def test_idempotent_ids_depend_on_key_and_idempotency_key():
    a = Principal("a", "a", frozenset({"*"}), frozenset())
    b = Principal("b", "b", frozenset({"*"}), frozenset())
    assert feedback_id_for(a, "x") == feedback_id_for(a, "x")
    assert feedback_id_for(a, "x") != feedback_id_for(b, "x") != feedback_id_for(a, "y")
    assert feedback_id_for(a, None) != feedback_id_for(a, None)


def test_event_carries_the_feedback_and_detected_language():
    fb = FeedbackIn.model_validate({"channel": "phone", "text": "客户投诉航班延误", "customer": {"phone": "+86 138-0013-8000"},
                                    "phone": {"agent_id": "A-1", "call_id": "C-9", "duration_seconds": 60}})
    event = to_event(fb, feedback_id="f-1", source="crm", privacy_key=b"k" * 32)
    data = FeedbackReceived.model_validate_json(event.value())
    assert (data.id, data.source, data.language, data.phone.call_id) == ("f-1", "crm", "zh", "C-9")
    # keyed by the customer's pseudonym (issue 14): the same customer, never the number
    assert event.id == "f-1" and event.key == "customer:" + pseudonym(b"k" * 32, "phone", "+8613800138000")
    assert "138" not in event.key


def test_field_errors_name_paths_and_unknown_fields():
    with pytest.raises(ValidationError) as exc:
        FeedbackIn.model_validate({"channel": "web", "text": "x", "colour": 1, "rating": {"scale": "nps", "value": 11}})
    errors = {e["path"]: e for e in field_errors(exc.value.errors())}
    assert errors["colour"] == {"path": "colour", "message": "unknown field 'colour'", "type": "extra_forbidden"}
    assert errors["rating"]["message"] == "nps rating must be between 0 and 10, got 11"


def test_random_ids_are_version_4_and_distinct_across_refills_and_forks():
    from services.intake.service import _random_id, _uuid4s

    ids = [_random_id() for _ in range(600)]  # more than one 4 KiB buffer
    assert len(set(ids)) == 600
    assert all(uuid.UUID(i).version == 4 and uuid.UUID(i).variant == uuid.RFC_4122 for i in ids)
    assert all(str(uuid.UUID(i)) == i for i in ids)  # canonical form: lower-case hex, hyphens at 8-4-4-4-12
    assert _uuid4s(bytes(16) + b"\xff" * 16) == [  # only the version and variant bits are set, whatever the bytes
        "00000000-0000-4000-8000-000000000000", "ffffffff-ffff-4fff-bfff-ffffffffffff"]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id must not be the parent's next id
        os.write(write, _random_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 64).decode()
    assert child != _random_id()
