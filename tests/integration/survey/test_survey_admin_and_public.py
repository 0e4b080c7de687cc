"""Admin API (auth, create/list/get) and a public survey answered by JSON and by form."""

from __future__ import annotations

import re

import pytest

from services.survey.app import create_app
from services.survey.settings import SurveySettings
from shared.events import FEEDBACK_RECEIVED, Envelope
from tests.integration.survey.support import read_topic
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": "Bearer test-admin-token-123"}

CHECKOUT = {
    "id": "store-checkout",
    "title": {"zh": "本次购物体验如何？", "en": "How was your visit?"},
    "location": "Shanghai Nanjing Rd",
    "touchpoint": "checkout",
    "questions": [
        {"id": "nps", "type": "nps", "required": True,
         "label": {"zh": "您向朋友推荐我们的可能性有多大？", "en": "How likely are you to recommend us?"}},
        {"id": "why", "type": "text", "label": {"zh": "原因是？", "en": "Why?"}},
        {"id": "staff", "type": "csat", "label": {"zh": "店员服务", "en": "Our staff"}},
        {"id": "stars", "type": "stars", "label": {"zh": "总体", "en": "Overall"}},
    ],
}


async def test_admin_api_and_public_survey(service_env, kafka_bootstrap):
    app = create_app(SurveySettings(**service_env, admin_token="test-admin-token-123"))
    async with running(app) as svc, svc.client() as http:
        assert (await http.get("/v1/surveys")).status_code == 401
        assert (await http.get("/v1/surveys")).headers["www-authenticate"] == "Bearer"
        assert (await http.post("/v1/surveys", json=CHECKOUT)).status_code == 401
        assert (await http.get("/v1/surveys", headers={"Authorization": "Bearer nope"})).status_code == 401
        assert (await http.get("/v1/surveys", headers={"Authorization": "Basic dGVzdA=="})).status_code == 401

        created = await http.post("/v1/surveys", json=CHECKOUT, headers=ADMIN)
        assert created.status_code == 201, created.text
        assert created.json()["url"] == "http://127.0.0.1:8002/s/store-checkout"
        assert (await http.post("/v1/surveys", json=CHECKOUT, headers=ADMIN)).status_code == 409
        bad = {**CHECKOUT, "id": "dup-ids", "questions": [CHECKOUT["questions"][0]] * 2}
        assert (await http.post("/v1/surveys", json=bad, headers=ADMIN)).status_code == 422

        listed = (await http.get("/v1/surveys", headers=ADMIN)).json()
        assert [s["id"] for s in listed] == ["recovery", "store-checkout"]
        assert listed[0]["builtin"] is True and listed[1]["questions"] == 4
        got = (await http.get("/v1/surveys/recovery", headers=ADMIN)).json()
        assert [q["type"] for q in got["survey"]["questions"]] == ["mot", "text"]
        assert (await http.get("/v1/surveys/nope", headers=ADMIN)).status_code == 404

        # the recovery survey needs a personal link; a forged one is refused
        assert (await http.get("/s/recovery")).status_code == 403
        assert (await http.get("/s/recovery", params={"t": "eyJzIjoicmVjb3ZlcnkifQ.AAAA"})).status_code == 403
        assert (await http.get("/s/unknown")).status_code == 404

        page = await http.get("/s/store-checkout", headers={"Accept-Language": "en-GB,en;q=0.9"})
        assert page.status_code == 200 and '<html lang="en">' in page.text
        assert page.text.count('name="q.nps"') == 11 and page.text.count('name="q.staff"') == 5
        # no CDN, no inline script: one script of its own (progressive enhancement; the form works without it)
        assert "cdn" not in page.text.lower()
        assert re.findall(r"<script[^>]*>", page.text) == ['<script src="/s/static/survey.js" defer>']

        invalid = await http.post("/s/store-checkout/responses", json={"answers": {"nps": 11, "bogus": 1}})
        assert invalid.status_code == 422
        assert {i["code"] for i in invalid.json()["detail"]} == {"out_of_range", "unknown_question"}

        answered = await http.post(
            "/s/store-checkout/responses",
            json={"answers": {"nps": 3, "why": "排队太久了", "staff": 4, "stars": "２"},
                  "submission_id": "abcdef0123456789", "language": "zh-CN"},
        )
        assert answered.status_code == 201, answered.text
        assert len(answered.json()["feedback_ids"]) == 3
        repeat = await http.post("/s/store-checkout/responses",
                                 json={"answers": {"nps": 3}, "submission_id": "abcdef0123456789"})
        assert repeat.status_code == 409

        form_page = await http.get("/s/store-checkout", params={"lang": "zh-CN"})
        submission = re.search(r'name="submission_id" value="([^"]+)"', form_page.text).group(1)
        posted = await http.post("/s/store-checkout/responses",
                                 data={"submission_id": submission, "lang": "zh-CN", "q.nps": "10"})
        assert posted.status_code == 200 and "感谢您的反馈" in posted.text
        assert (await http.post("/s/store-checkout/responses", content=b"x",
                                headers={"Content-Type": "text/plain"})).status_code == 415

        await wait_until(lambda: _drained(svc), timeout=10, what="outbox drained")

    topic = service_env["kafka_topic_prefix"] + FEEDBACK_RECEIVED.topic
    events = [Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value).data
              for m in await read_topic(kafka_bootstrap, topic, at_least=4)]
    assert len(events) == 4
    by_question = {(e.survey.response_id, e.survey.question_id): e for e in events}
    assert len({e.survey.response_id for e in events}) == 2
    first = [e for e in events if e.survey.response_id == answered.json()["response_id"]]
    ratings = {e.survey.question_id: (e.rating.scale.value, e.rating.value, e.text) for e in first}
    assert ratings == {"nps": ("nps", 3, "排队太久了"), "staff": ("csat", 4, None), "stars": ("stars", 2, None)}
    assert all(e.location == "Shanghai Nanjing Rd" and e.touchpoint == "checkout" and e.customer is None
               and e.survey.recovery_for_alert_id is None for e in events)
    assert len(by_question) == 4


async def _drained(svc) -> bool:
    return await svc.runtime.relay.pending() == 0


async def test_a_response_body_over_the_limit_is_refused_while_read(service_env):
    app = create_app(SurveySettings(**service_env))
    big = b'{"answers": {"why": "' + b"x" * (300 * 1024) + b'"}}'

    async def chunks():
        for i in range(0, len(big), 16 * 1024):
            yield big[i:i + 16 * 1024]

    async with running(app) as svc, svc.client() as http:
        declared = await http.post("/s/recovery/responses", content=big, headers={"Content-Type": "application/json"})
        streamed = await http.post("/s/recovery/responses", content=chunks(),
                                   headers={"Content-Type": "application/json"})
    assert (declared.status_code, declared.json()["code"]) == (413, "too_large")
    assert (streamed.status_code, streamed.json()["code"]) == (413, "too_large")
