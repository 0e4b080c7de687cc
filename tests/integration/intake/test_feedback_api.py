"""POST /v1/feedback through the real broker: 202 ids, idempotency, language
detection, the error shape, size limits and the OpenAPI document."""

from __future__ import annotations

import json

import httpx

from shared.contracts import FeedbackReceived
from shared.privacy import DEV_PRIVACY_HASH_KEY, pseudonym
from tests.integration.intake.support import dev_headers, intake, read_events

CHINESE = "排队等了四十分钟，收银台只开了一个，店员态度也很冷淡。"


async def test_accepted_feedback_reaches_kafka_with_detected_language(service_env, kafka_bootstrap, topic_prefix):
    async with intake(service_env) as svc, svc.client() as http:
        zh = await http.post("/v1/feedback", headers=dev_headers(svc), json={
            "channel": "kiosk", "text": CHINESE, "rating": {"scale": "mot", "value": -2},
            "location": "store-12", "touchpoint": "checkout", "kiosk": {"device_id": "k-12"},
        })
        en = await http.post("/v1/feedback", headers=dev_headers(svc), json={
            "channel": "web", "text": "Great service at the gate, thank you!", "customer": {"id": "C-7"},
        })
        tagged = await http.post("/v1/feedback", headers=dev_headers(svc), json={
            "channel": "web", "text": "WiFi 太慢了", "language": "zh-TW",
        })
    assert [r.status_code for r in (zh, en, tagged)] == [202, 202, 202], (zh.text, en.text, tagged.text)
    ids = [r.json()["id"] for r in (zh, en, tagged)]
    events = {e.id: e for e in await read_events(kafka_bootstrap, f"{topic_prefix}feedback.received.v1", 3)}
    assert set(events) == set(ids)
    first = FeedbackReceived.model_validate_json(events[ids[0]].value())
    assert (first.id, first.channel, first.text, first.language, first.source) == (ids[0], "kiosk", CHINESE, "zh", "dev")
    assert first.rating.value == -2 and first.kiosk.device_id == "k-12"
    assert events[ids[0]].key == "place:store-12/checkout"
    assert {e.source for e in events.values()} == {"/keymoment/intake"}  # the CloudEvents source
    assert FeedbackReceived.model_validate_json(events[ids[1]].value()).language == "en"
    # keyed by the customer's pseudonym (issue 14), never the id itself
    assert events[ids[1]].key == "customer:" + pseudonym(DEV_PRIVACY_HASH_KEY.encode(), "id", "C-7")
    assert FeedbackReceived.model_validate_json(events[ids[2]].value()).language == "zh-TW"  # given, not detected


async def test_idempotency_key_returns_the_same_id_and_one_event(service_env, kafka_bootstrap, topic_prefix):
    body = {"channel": "web", "text": "Checkout page froze twice"}
    async with intake(service_env) as svc, svc.client() as http:
        first = await http.post("/v1/feedback", json=body, headers=dev_headers(svc, **{"Idempotency-Key": "form-42"}))
        retry = await http.post("/v1/feedback", json=body, headers=dev_headers(svc, **{"Idempotency-Key": "form-42"}))
        other = await http.post("/v1/feedback", json=body, headers=dev_headers(svc, **{"Idempotency-Key": "form-43"}))
        plain = [await http.post("/v1/feedback", json=body, headers=dev_headers(svc)) for _ in range(2)]
    assert first.status_code == retry.status_code == other.status_code == 202
    assert first.json()["id"] == retry.json()["id"] != other.json()["id"]
    assert plain[0].json()["id"] != plain[1].json()["id"]
    # Both attempts are on Kafka under the same event id: consumers keep one (processed_events).
    events = await read_events(kafka_bootstrap, f"{topic_prefix}feedback.received.v1", 5)
    assert len({e.id for e in events}) == 4


async def test_validation_errors_name_every_bad_field(service_env):
    async with intake(service_env) as svc, svc.client() as http:
        response = await http.post("/v1/feedback", headers=dev_headers(svc), json={
            "channel": "web", "text": "ok", "colour": "red", "rating": {"scale": "mot", "value": 5},
            "customer": {"email": "not-an-email"},
        })
        nothing = await http.post("/v1/feedback", headers=dev_headers(svc), json={"channel": "web"})
        not_json = await http.post("/v1/feedback", headers={**dev_headers(svc), "Content-Type": "application/json"},
                                   content=b"{nope")
    assert response.status_code == 422
    body = response.json()
    paths = {e["path"]: e for e in body["errors"]}
    assert set(paths) == {"colour", "rating", "customer.email"}, body
    assert paths["colour"]["message"] == "unknown field 'colour'" and paths["colour"]["type"] == "extra_forbidden"
    assert "between -3 and 3" in paths["rating"]["message"]
    assert "not-an-email" not in json.dumps(body)  # inputs are not echoed
    assert nothing.status_code == 422 and "text, a rating" in nothing.json()["errors"][0]["message"]
    assert not_json.status_code == 422 and not_json.json()["errors"][0]["type"] == "json_invalid"


async def test_bodies_over_64_kib_are_refused_by_length_and_by_stream(service_env):
    big = json.dumps({"channel": "web", "text": "x" * 70_000}).encode()

    async def chunks():
        for i in range(0, len(big), 8192):
            yield big[i:i + 8192]

    async with intake(service_env) as svc, svc.client() as http:
        declared = await http.post("/v1/feedback", content=big,
                                   headers=dev_headers(svc, **{"Content-Type": "application/json"}))
        streamed = await http.post("/v1/feedback", content=chunks(),
                                   headers=dev_headers(svc, **{"Content-Type": "application/json"}))
        under = await http.post("/v1/feedback", headers=dev_headers(svc),
                                json={"channel": "web", "text": "y" * 19_000})
    assert declared.status_code == 413 and "65536" in declared.json()["detail"]
    assert streamed.status_code == 413
    assert under.status_code == 202


async def test_openapi_documents_the_api_for_integrators(service_env):
    async with intake(service_env) as svc, svc.client() as http:
        spec = (await http.get("/openapi.json")).json()
        docs = await http.get("/docs")
    assert docs.status_code == 200
    single = spec["paths"]["/v1/feedback"]["post"]
    assert {"202", "401", "403", "413", "422", "429", "503"} <= set(single["responses"])
    assert single["requestBody"]["content"]["application/json"]["examples"]["kiosk"]["value"]["channel"] == "kiosk"
    assert any(p["name"] == "Idempotency-Key" for p in single["parameters"])
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    batch = spec["paths"]["/v1/feedback:batch"]["post"]
    assert set(batch["requestBody"]["content"]) == {"application/json", "application/x-ndjson"}
    assert "FeedbackIn" in spec["components"]["schemas"]
