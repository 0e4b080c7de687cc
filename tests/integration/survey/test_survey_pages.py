"""Versions, question types, partial answers without JavaScript, the public pages' rate limits,
and the triggers that invite after feedback or a visit."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.survey import tokens
from services.survey.app import create_app
from shared.contracts import FeedbackReceived
from shared.events import FEEDBACK_RECEIVED, SURVEY_RESPONDED, Envelope
from shared.privacy import DEV_PRIVACY_HASH_KEY, pseudonym
from tests.integration.survey.support import (
    ADMIN,
    CollectingSmtp,
    SmtpServer,
    bilingual,
    events_of,
    invitation,
    path_of,
    post_visit,
    publish,
    survey_link,
    survey_settings,
)
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration
KEY = DEV_PRIVACY_HASH_KEY.encode()  # every service's key in the test environment


def _hidden(page: str, name: str) -> str:
    return re.search(rf'name="{name}" value="([^"]*)"', page).group(1)


async def test_versions_are_kept_and_every_response_records_its_own(service_env, kafka_bootstrap):
    public = post_visit("lobby", access="public")
    async with running(create_app(survey_settings(service_env))) as svc, svc.client() as http:
        assert (await http.post("/v1/surveys", json=public, headers=ADMIN)).status_code == 201
        one_language = public | {"title": {"zh": "只有中文"}}
        refused = await http.put("/v1/surveys/lobby", json=one_language, headers=ADMIN)
        assert refused.status_code == 422 and "both zh and en" in refused.text
        v1_page = await http.get("/s/lobby")
        assert _hidden(v1_page.text, "v") == "1"

        edited = public | {"questions": public["questions"][:1] + [
            {"id": "nps", "type": "nps", "label": bilingual("推荐吗？", "Recommend us?")}]}
        put = await http.put("/v1/surveys/lobby", json=edited, headers=ADMIN)
        assert put.json() == {"survey_id": "lobby", "version": 2, "created": True, "url": put.json()["url"]}
        same = await http.put("/v1/surveys/lobby", json=edited, headers=ADMIN)
        assert (same.json()["version"], same.json()["created"]) == (2, False)
        assert (await http.put("/v1/surveys/nope", json=edited | {"id": "nope"}, headers=ADMIN)).status_code == 404
        assert (await http.put("/v1/surveys/lobby", json=edited | {"id": "x"}, headers=ADMIN)).status_code == 422
        assert (await http.post("/v1/surveys", json=edited, headers=ADMIN)).status_code == 409
        versions = (await http.get("/v1/surveys/lobby/versions", headers=ADMIN)).json()
        assert [v["version"] for v in versions] == [1, 2]
        assert [q["id"] for q in versions[0]["survey"]["questions"]] == ["feeling", "effort", "reason", "comment"]
        assert (await http.get("/v1/surveys/lobby", headers=ADMIN)).json()["version"] == 2
        assert (await http.get("/v1/surveys/lobby/versions/9", headers=ADMIN)).status_code == 404

        # a form shown before the edit is answered against the version it showed
        old = await http.post("/s/lobby/responses", data={
            "v": "1", "submission_id": _hidden(v1_page.text, "submission_id"), "lang": "zh-CN",
            "q.feeling": "-1", "q.effort": "2", "q.reason": "queue", "q.comment": "排队太久"})
        assert old.status_code == 200 and "感谢" in old.text
        new = await http.post("/s/lobby/responses", json={"answers": {"feeling": 3, "nps": "１０"}})
        assert new.status_code == 201 and new.json()["version"] == 2
        wrong = await http.post("/s/lobby/responses", json={"answers": {"feeling": 1, "reason": "weather"}, "version": 1})
        assert wrong.status_code == 422 and wrong.json()["detail"][0]["code"] == "unknown_option"
        await wait_until(lambda: _drained(svc), timeout=10, what="outbox drained")

    responses = await events_of(kafka_bootstrap, service_env["kafka_topic_prefix"] + SURVEY_RESPONDED.topic, 2)
    assert sorted((r.survey_version, [a.question_id for a in r.answers]) for r in responses) == [
        (1, ["feeling", "effort", "reason", "comment"]), (2, ["feeling", "nps"])]
    assert all(r.invitation is None and r.location == "上海南京路店" for r in responses)


async def _drained(svc) -> bool:
    return await svc.runtime.relay.pending() == 0


async def test_partial_answers_are_kept_without_javascript(service_env):
    with SmtpServer(CollectingSmtp()) as smtp:
        async with running(create_app(survey_settings(service_env, smtp.port))) as svc, svc.client() as http:
            assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
            assert (await http.post("/v1/surveys", json=post_visit("lobby", access="public"), headers=ADMIN)
                    ).status_code == 201
            invited = await http.post("/v1/invitations", headers=ADMIN,
                                      json=invitation("post-visit", "li.wei@example.cn", key="p1"))
            await wait_until(lambda: len(smtp.messages) == 1, timeout=20, what="the invitation")
            link = path_of(survey_link(smtp.messages[0], "post-visit"))

            # a personal link: "save and finish later" is a plain form post (no script needed)
            page = await http.get(link)
            assert 'formaction="/s/post-visit/draft"' in page.text
            saved = await http.post("/s/post-visit/draft", data={
                "t": _hidden(page.text, "t"), "v": "1", "lang": "zh-CN", "submission_id": "x" * 10,
                "q.feeling": "-2", "q.comment": "收银台只开了一个", "q.effort": "99"})
            assert saved.status_code == 303 and "saved=1" in saved.headers["location"]
            reopened = await http.get(saved.headers["location"])
            assert "已保存" in reopened.text
            assert re.search(r'value="-2" checked', reopened.text) and "收银台只开了一个" in reopened.text
            assert not re.search(r'name="q.effort" value="\d+" checked', reopened.text)  # an invalid answer: not kept
            steps = (await http.get(f"/v1/invitations/{invited.json()['invitation_id']}", headers=ADMIN)).json()
            assert {"opened", "started"} <= set(steps["steps"]) and "completed" not in steps["steps"]
            # the page's script saves the same way (fetch): 204
            fetched = await http.post("/s/post-visit/draft", headers={"X-Requested-With": "fetch"},
                                      data={"t": _hidden(page.text, "t"), "q.feeling": "1"})
            assert fetched.status_code == 204
            done = await http.post("/s/post-visit/responses", data={"t": _hidden(page.text, "t"), "q.feeling": "1"})
            assert done.status_code == 200
            assert "已回答" in (await http.get(link)).text
            late = await http.post("/s/post-visit/draft", headers={"X-Requested-With": "fetch"},
                                   data={"t": _hidden(page.text, "t"), "q.feeling": "2"})
            assert late.status_code == 409  # a draft after the answer is not kept

            # a public survey: the browser's cookie names its partial answers
            first = await http.get("/s/lobby")
            cookie = first.cookies.get("km_s_lobby")
            assert cookie and _hidden(first.text, "submission_id") == cookie
            assert "secure" in first.headers["set-cookie"].lower() and "httponly" in first.headers["set-cookie"].lower()
            # The public URL is https, so the cookie is Secure; this client speaks plain http to the service
            # and hands it over itself, as a browser would over https.
            http.cookies.set("km_s_lobby", cookie)
            await http.post("/s/lobby/draft", data={"submission_id": cookie, "q.reason": "price"})
            again = await http.get("/s/lobby")
            assert 'value="price" checked' in again.text and _hidden(again.text, "submission_id") == cookie
            thanks = await http.post("/s/lobby/responses", data={"submission_id": cookie, "q.feeling": "0"})
            renewed = thanks.cookies.get("km_s_lobby")
            assert thanks.status_code == 200 and renewed not in (None, cookie)
            http.cookies.set("km_s_lobby", renewed)
            fresh = await http.get("/s/lobby")
            assert not re.search(r"\" checked", fresh.text)  # answered: the next visit starts a new response


async def test_public_pages_are_rate_limited_per_client_link_and_survey(service_env):
    settings = survey_settings(service_env, survey_client_requests_per_minute=5, mail_sender_enabled=False)
    async with running(create_app(settings)) as svc, svc.client(headers={"Accept-Language": "en"}) as http:
        assert (await http.post("/v1/surveys", json=post_visit("lobby", access="public"), headers=ADMIN)
                ).status_code == 201
        statuses = [(await http.get("/s/lobby")).status_code for _ in range(6)]
        assert statuses == [200] * 5 + [429]
        refused = await http.get("/s/lobby")
        assert refused.headers["retry-after"].isdigit() and "Too many requests" in refused.text
        api = await http.post("/s/lobby/responses", json={"answers": {"feeling": 1}},
                              headers={"Accept": "application/json"})
        assert api.status_code == 429 and api.json()["code"] == "too_many"
        assert (await http.get("/v1/surveys", headers=ADMIN)).status_code == 200  # only the public pages
        metrics = (await http.get("/metrics")).text
        assert 'keymoment_survey_rate_limited_total{limit="client"} 3.0' in metrics

    settings = survey_settings(service_env, survey_link_requests_per_minute=2,
                               survey_public_submissions_per_minute=3, mail_sender_enabled=False)
    async with running(create_app(settings)) as svc, svc.client() as http:
        invited = await http.post("/v1/invitations", headers=ADMIN,
                                  json=invitation("lobby", "li.wei@example.cn", key="r1"))
        token = tokens.sign(svc.app.state.context.links, survey_id="lobby",
                            request_id=invited.json()["invitation_id"], ttl=timedelta(days=1))
        link = [(await http.get("/s/lobby", params={"t": token})).status_code for _ in range(3)]
        assert link == [200, 200, 429]
        answers = [(await http.post("/s/lobby/responses", json={"answers": {"feeling": -3, "comment": "x"}})
                    ).status_code for _ in range(4)]
        assert answers == [201, 201, 201, 429]
        too_long = await http.post("/s/lobby/responses", json={"answers": {"feeling": 1, "comment": "长" * 2001}})
        assert too_long.status_code == 429  # still limited: nothing is even validated
        metrics = (await http.get("/metrics")).text
        assert 'keymoment_survey_rate_limited_total{limit="link"} 1.0' in metrics
        assert 'keymoment_survey_rate_limited_total{limit="survey"} 2.0' in metrics


async def test_every_answer_is_bounded(service_env):
    async with running(create_app(survey_settings(service_env, mail_sender_enabled=False))) as svc, \
            svc.client() as http:
        assert (await http.post("/v1/surveys", json=post_visit("lobby", access="public"), headers=ADMIN)
                ).status_code == 201
        long = await http.post("/s/lobby/responses", json={"answers": {"feeling": 1, "comment": "长" * 2001}})
        assert long.status_code == 422 and long.json()["detail"][0]["code"] == "too_long"
        choice = await http.post("/s/lobby/responses", json={"answers": {"feeling": 1, "reason": "x" * 500}})
        assert choice.json()["detail"][0]["code"] == "unknown_option"
        scale = await http.post("/s/lobby/responses", json={"answers": {"feeling": 1, "effort": 8}})
        assert scale.json()["detail"][0]["code"] == "out_of_range"
        body = await http.post("/s/lobby/responses", content=b"q.comment=" + b"x" * (300 * 1024),
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert body.status_code == 413
        draft = await http.post("/s/lobby/draft", content=b"q.comment=" + b"x" * (300 * 1024),
                                headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert draft.status_code == 413
        # ids no survey, invitation or token can have are answered before the database sees them (no 5xx)
        assert (await http.get("/s/lobby%00")).status_code == 404
        assert (await http.post("/s/lobby%00/responses", json={"answers": {"feeling": 1}})).status_code == 404
        assert (await http.get("/v1/surveys/lobby%00", headers=ADMIN)).status_code == 422
        assert (await http.get("/v1/invitations/x%00y", headers=ADMIN)).status_code == 422
        assert (await http.delete("/v1/tokens/%01", headers=ADMIN)).status_code == 422
        assert (await http.get("/v1/surveys/lobby/versions/99999999999", headers=ADMIN)).status_code == 404


def _feedback(channel: str, touchpoint: str, email: str | None) -> Envelope:
    data = FeedbackReceived(
        id=str(uuid.uuid4()), received_at=datetime.now(UTC), source="pos", channel=channel, touchpoint=touchpoint,
        location="上海南京路店", rating={"scale": "stars", "value": 4},
        customer={"id": "C-7", "email": email} if email else None,
    )
    return Envelope.new(FEEDBACK_RECEIVED, data, source="/keymoment/intake", key=data.partition_key(KEY),
                        id=data.id)


async def test_feedback_is_read_only_while_some_survey_has_a_feedback_trigger(service_env):
    """No feedback trigger, no cost: survey passes feedback.received.v1 over unread (no dedupe row,
    nothing decoded) until a survey names one, and then invites after the next matching feedback."""
    after_visit = post_visit("visits-only", triggers=[{"on": "visit", "locations": ["上海南京路店"]}])
    after_call = post_visit("after-call", triggers=[{"on": "feedback", "channels": ["phone"]}])
    with SmtpServer(CollectingSmtp()) as smtp:
        async with running(create_app(survey_settings(service_env, smtp.port))) as svc, svc.client() as http:
            assert (await http.post("/v1/surveys", json=after_visit, headers=ADMIN)).status_code == 201
            topic = service_env["kafka_topic_prefix"] + FEEDBACK_RECEIVED.topic
            passed_over = svc.runtime.consumer_metrics.processed.labels(
                svc.runtime.settings.consumer_group, topic, "passed_over")
            before = _feedback("phone", "hotline", "caller@example.cn")
            await publish(service_env, before)
            await wait_until(lambda: passed_over._value.get() >= 1, timeout=30, what="the feedback passed over")
            assert not await svc.runtime.pool.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = $1", before.id)

            assert (await http.post("/v1/surveys", json=after_call, headers=ADMIN)).status_code == 201
            after = _feedback("phone", "hotline", "caller2@example.cn")
            await publish(service_env, after)
            await wait_until(lambda: len(smtp.messages) == 1, timeout=30, what="the invitation after the call")
            assert smtp.recipients == [["caller2@example.cn"]]
            assert await svc.runtime.pool.fetchval(
                "SELECT count(*) FROM processed_events WHERE event_id = $1", after.id) == 1
            assert passed_over._value.get() == 1


async def test_triggers_invite_after_feedback_and_visits(service_env):
    after_call = post_visit("after-call", triggers=[{"on": "feedback", "channels": ["phone"], "touchpoints": ["hotline"]}])
    after_visit = post_visit("after-visit", triggers=[{"on": "visit", "locations": ["上海南京路店"], "delay_minutes": 0}],
                             contact_rules={"scope": "survey", "min_days_between": 0})
    with SmtpServer(CollectingSmtp()) as smtp:
        async with running(create_app(survey_settings(service_env, smtp.port))) as svc, svc.client() as http:
            for definition in (after_call, after_visit):
                assert (await http.post("/v1/surveys", json=definition, headers=ADMIN)).status_code == 201
            bad = post_visit("bad", triggers=[{"on": "feedback", "channels": ["survey"]}])
            assert (await http.post("/v1/surveys", json=bad, headers=ADMIN)).status_code == 422
            matching = _feedback("phone", "hotline", "caller@example.cn")
            erased = _feedback("phone", "hotline", "erased@example.cn")  # a customer erased since (a late event)
            await svc.runtime.pool.execute(
                "INSERT INTO erased_subjects (subject, erasure_id, erased_at) VALUES ($1, 'e-1', $2)",
                pseudonym(KEY, "email", "erased@example.cn"), datetime.now(UTC) + timedelta(seconds=1))
            await publish(service_env, erased, matching, _feedback("phone", "hotline", None), _feedback(
                "kiosk", "hotline", "kiosk@example.cn"), _feedback("phone", "shop", "shop@example.cn"), matching)
            await wait_until(lambda: len(smtp.messages) == 1, timeout=30, what="the invitation after the call")
            await wait_until(lambda: svc.runtime.pool.fetchval(
                "SELECT true FROM processed_events WHERE event_id = $1", erased.id), timeout=30, what="the erased one")
            assert await svc.runtime.pool.fetchval(
                "SELECT count(*) FROM survey_requests WHERE requested_by = 'trigger:feedback'") == 1
            assert smtp.recipients == [["caller@example.cn"]]
            assert "/s/after-call?t=" in smtp.messages[0].get_body(("plain",)).get_content()

            issued = await http.post("/v1/tokens", headers=ADMIN, json={"subject": "pos", "scopes": ["visits:write"]})
            pos = {"Authorization": f"Bearer {issued.json()['token']}"}
            visit = {"customer": {"id": "C-8", "email": "shopper@example.cn"}, "location": "上海南京路店",
                     "touchpoint": "checkout", "key": "receipt-77", "context": {"receipt": "77"}}
            assert (await http.post("/v1/visits", json=visit, headers=ADMIN | {"Authorization": "Bearer x"})
                    ).status_code == 401
            answered = await http.post("/v1/visits", json=visit, headers=pos)
            assert answered.status_code == 202
            assert [(v["survey_id"], v["status"]) for v in answered.json()] == [("after-visit", "queued")]
            repeat = await http.post("/v1/visits", json=visit, headers=pos)
            assert repeat.json()[0]["invitation_id"] == answered.json()[0]["invitation_id"]
            elsewhere = await http.post("/v1/visits", json=visit | {"location": "北京国贸店", "key": "r-78"}, headers=pos)
            assert elsewhere.json() == []
            await wait_until(lambda: len(smtp.messages) == 2, timeout=20, what="the invitation after the visit")
            state = (await http.get(f"/v1/invitations/{answered.json()[0]['invitation_id']}", headers=ADMIN)).json()
            assert state["kind"] == "trigger"
