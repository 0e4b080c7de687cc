"""Invitations for any survey through the API: who may invite, idempotency keys, the mail
(bilingual, List-Unsubscribe one-click), bulk CSV/NDJSON with a report per row, and the
funnel as survey.invitation.v1 — on a real broker, PostgreSQL and SMTP server."""

from __future__ import annotations

import asyncio
import json
import re

import pytest

from services.survey.app import create_app
from shared.contracts import FunnelStep
from shared.events import SURVEY_INVITATION, SURVEY_RESPONDED
from tests.integration.survey.support import (
    ADMIN,
    PUBLIC_BASE,
    CollectingSmtp,
    SmtpServer,
    events_of,
    invitation,
    path_of,
    post_visit,
    survey_link,
    survey_settings,
    unsubscribe_link,
)
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration


async def test_invite_auth_idempotency_mail_and_funnel(service_env, kafka_bootstrap):
    with SmtpServer(CollectingSmtp()) as smtp:
        async with running(create_app(survey_settings(service_env, smtp.port))) as svc, svc.client() as http:
            assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
            other = post_visit("other-survey")
            assert (await http.post("/v1/surveys", json=other, headers=ADMIN)).status_code == 201

            body = invitation("post-visit", "wang.fang@example.cn", key="order-9981", customer_id="C-1",
                              touchpoint="checkout", context={"order_id": "9981", "agent": "李雷"})
            assert (await http.post("/v1/invitations", json=body)).status_code == 401
            first = await http.post("/v1/invitations", json=body, headers=ADMIN)
            assert first.status_code == 202, first.text
            invited = first.json()
            assert invited["status"] == "queued" and "reason" not in invited
            again = await http.post("/v1/invitations", json=body, headers=ADMIN)
            assert (again.status_code, again.json()) == (202, invited)
            assert again.headers["idempotent-replayed"] == "true"
            reused = await http.post("/v1/invitations", json=body | {"touchpoint": "returns"}, headers=ADMIN)
            assert reused.status_code == 409 and reused.json()["code"] == "idempotency_key_reused"
            header_key = await http.post("/v1/invitations", headers=ADMIN | {"Idempotency-Key": "order-9981"},
                                         json={k: v for k, v in body.items() if k != "key"})
            assert header_key.json()["invitation_id"] == invited["invitation_id"]
            # the same customer again (another order, the same day): the default rule is one per 30 days
            second = await http.post("/v1/invitations", headers=ADMIN,
                                     json=invitation("other-survey", "Wang.Fang@Example.CN", key="order-9982"))
            assert second.json()["status"] == "skipped" and second.json()["reason"] == "frequency"
            # by customer id only, too (the contact keys hold every identity the invitation named)
            by_id = await http.post("/v1/invitations", headers=ADMIN,
                                    json=invitation("other-survey", "w.f@work.example.cn", customer_id="C-1"))
            assert by_id.json()["reason"] == "frequency"

            # a scoped token: invitations:write, limited to post-visit
            issued = await http.post("/v1/tokens", headers=ADMIN, json={
                "subject": "pos-system", "scopes": ["invitations:write", "survey:post-visit"], "days": 30})
            assert issued.status_code == 201, issued.text
            scoped = {"Authorization": f"Bearer {issued.json()['token']}"}
            assert issued.json()["token"].startswith("kmsv.")
            assert (await http.get("/v1/surveys", headers=scoped)).status_code == 403
            denied = await http.post("/v1/invitations", headers=scoped, json=invitation("other-survey", "a@b.cn"))
            assert denied.status_code == 403 and "insufficient_scope" in denied.headers["www-authenticate"]
            allowed = await http.post("/v1/invitations", headers=scoped,
                                      json=invitation("post-visit", "li.lei@example.cn", key="pos-1"))
            assert allowed.status_code == 202 and allowed.json()["status"] == "queued"
            state = await http.get(f"/v1/invitations/{allowed.json()['invitation_id']}", headers=scoped)
            assert state.json()["kind"] == "api" and state.json()["survey_version"] == 1
            assert (await http.post("/v1/tokens", headers=scoped, json={"subject": "x", "scopes": ["surveys:admin"]}
                                    )).status_code == 403
            assert (await http.post("/v1/tokens", headers=ADMIN, json={"subject": "x", "scopes": ["root"]}
                                    )).status_code == 422
            assert (await http.delete(f"/v1/tokens/{issued.json()['token_id']}", headers=ADMIN)).status_code == 204
            revoked = await http.post("/v1/invitations", headers=scoped, json=invitation("post-visit", "x@y.cn"))
            assert revoked.status_code == 401 and 'error="invalid_token"' in revoked.headers["www-authenticate"]
            assert (await http.post("/v1/invitations", headers=ADMIN,
                                    json=invitation("nope", "x@y.cn"))).status_code == 404

            await wait_until(lambda: len(smtp.messages) == 2, timeout=20, what="two invitation mails")
            mail = next(m for m in smtp.messages if "wang.fang@example.cn" in str(m["To"]))
            assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
            assert unsubscribe_link(mail).startswith(f"{PUBLIC_BASE}/u/")
            plain = mail.get_body(("plain",)).get_content()
            html = mail.get_body(("html",)).get_content()
            assert "王芳您好" in plain and "Dear 王芳" in plain and plain.index("您好") < plain.index("Dear")
            assert "退订" in plain and "Unsubscribe" in plain
            assert not re.search("[\U0001F600-\U0001F64F]", html), "no emoji faces in the mail"
            assert "非常糟糕" in html and "#c62828" in html  # the faces, named and coloured as the kiosk's

            # the customer follows the link and answers: opened, started, completed
            link = path_of(survey_link(mail, "post-visit"))
            page = await http.get(link)
            assert page.status_code == 200 and "<svg" in page.text and 'name="q.effort"' in page.text
            token = re.search(r'name="t" value="([^"]+)"', page.text).group(1)
            done = await http.post("/s/post-visit/responses", json={
                "token": token, "language": "zh-CN",
                "answers": {"feeling": 2, "effort": 6, "reason": "staff", "comment": "店员很耐心"}})
            assert done.status_code == 201, done.text

            async def all_steps() -> bool:
                state = await http.get(f"/v1/invitations/{invited['invitation_id']}", headers=ADMIN)
                return set(state.json()["steps"]) == {"invited", "delivered", "opened", "started", "completed"}

            await wait_until(all_steps, timeout=10, what="every funnel step recorded")
            await wait_until(lambda: _drained(svc), timeout=10, what="outbox drained")

    prefix = service_env["kafka_topic_prefix"]
    funnel = await events_of(kafka_bootstrap, prefix + SURVEY_INVITATION.topic, at_least=9)
    mine = {e.step for e in funnel if e.invitation_id == invited["invitation_id"]}
    assert mine == {FunnelStep.INVITED, FunnelStep.DELIVERED, FunnelStep.OPENED, FunnelStep.STARTED,
                    FunnelStep.COMPLETED}
    skips = sorted((e.survey_id, e.reason.value) for e in funnel if e.step == FunnelStep.SKIPPED)
    assert skips == [("other-survey", "frequency"), ("other-survey", "frequency")]
    assert all(e.location == "上海南京路店" for e in funnel if e.survey_id == "post-visit")
    [response] = await events_of(kafka_bootstrap, prefix + SURVEY_RESPONDED.topic, at_least=1)
    assert response.survey_version == 1 and response.language == "zh-CN"
    assert [(a.question_id, a.type, a.value) for a in response.answers] == [
        ("feeling", "mot", 2), ("effort", "ces", 6), ("reason", "choice", "staff"), ("comment", "text", "店员很耐心")]
    assert response.invitation.invitation_id == invited["invitation_id"]
    assert response.invitation.context == {"order_id": "9981", "agent": "李雷"}
    assert response.invitation.customer.email == "wang.fang@example.cn" and response.invitation.kind == "api"
    assert len(response.feedback_ids) == 1  # the MOT answer with its comment; CES and choice ride in the response


async def _drained(svc) -> bool:
    return await svc.runtime.relay.pending() == 0


CSV_GBK = (
    "邮箱,姓名,客户编号,门店,时区,context.order_id,编号\n"
    "li.wei@example.cn,李伟,C-1,北京国贸店,Asia/Shanghai,A-1,k-1\n"
    "赵六@例子.中国,赵六,C-2,北京国贸店,,A-2,k-2\n"
    "zhao.lei@example.cn,赵磊,C-3,北京国贸店,Mars/Olympus,A-3,k-3\n"
    "li.wei@example.cn,李伟,C-1,北京国贸店,Asia/Shanghai,A-4,k-4\n"
    ",,,,,,\n"
    "chen.jing@example.cn,陈静,,,,,k-5\n"
).encode("gb18030")


async def test_bulk_csv_and_ndjson_with_a_report_per_row(service_env):
    async with running(create_app(survey_settings(service_env, mail_sender_enabled=False))) as svc, \
            svc.client() as http:
        assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
        url = "/v1/invitations/bulk?survey_id=post-visit"
        assert (await http.post(url, content=CSV_GBK, headers={"Content-Type": "text/csv"})).status_code == 401
        report = await http.post(url, content=CSV_GBK, headers=ADMIN | {"Content-Type": "text/csv"})
        assert report.status_code == 202, report.text
        r = report.json()
        assert (r["rows"], r["queued"], r["skipped"], r["invalid"]) == (5, 2, 2, 1)
        rows = {row["row"]: row for row in r["results"]}
        assert sorted(rows) == [1, 2, 3, 4, 6]  # the empty line is no row
        assert rows[1]["status"] == "queued" and rows[6]["status"] == "queued"
        assert rows[2]["status"] == "skipped" and rows[2]["reason"] == "no_address"  # not an address we can mail
        assert rows[3]["status"] == "invalid" and any("time zone" in e for e in rows[3]["errors"])
        assert rows[4]["reason"] == "frequency"  # the same customer twice in one file
        assert r["skipped_by_reason"] == {"no_address": 1, "frequency": 1}
        # the same file again: every row is the same invitation (keys), decided nothing anew
        repeat = (await http.post(url, content=CSV_GBK, headers=ADMIN | {"Content-Type": "text/csv"})).json()
        assert [x.get("invitation_id") for x in repeat["results"]] == [x.get("invitation_id") for x in r["results"]]
        assert (repeat["queued"], repeat["skipped"]) == (2, 2)

        ndjson = "\n".join(json.dumps(line, ensure_ascii=False) for line in [
            {"customer": {"email": f"n{i}@example.cn"}, "key": f"n-{i}"} for i in range(3)
        ] + [{"survey_id": "other", "customer": {"email": "x@example.cn"}}, "[1]"]) + "\nnot json\n"
        nd = await http.post(url, content=ndjson.encode(), headers=ADMIN | {"Content-Type": "application/x-ndjson"})
        assert nd.status_code == 202, nd.text
        assert [(x["row"], x["status"]) for x in nd.json()["results"]] == [
            (1, "queued"), (2, "queued"), (3, "queued"), (4, "invalid"), (5, "invalid"), (6, "invalid")]

        too_many = "\n".join(json.dumps({"customer": {"email": f"m{i}@example.cn"}}) for i in range(10_001))
        big = await http.post(url, content=too_many.encode(),
                              headers=ADMIN | {"Content-Type": "application/x-ndjson"})
        assert big.status_code == 422 and "10000" in big.text
        assert (await http.post(url, content=b"{}", headers=ADMIN | {"Content-Type": "application/json"})
                ).status_code == 415
        assert (await http.post("/v1/invitations/bulk?survey_id=nope", content=CSV_GBK,
                                headers=ADMIN | {"Content-Type": "text/csv"})).status_code == 404
        no_customer = await http.post(url, content="name\n王\n".encode(), headers=ADMIN | {"Content-Type": "text/csv"})
        assert no_customer.status_code == 422 and "email" in no_customer.json()["detail"]


async def test_keymoment_survey_invite_sends_a_csv_and_a_second_run_invites_nobody_twice(service_env, tmp_path):
    from services.survey import cli

    rows = ["email,name,location,context.order_id"] + [f"c{i}@example.cn,客户{i},北京国贸店,O-{i}" for i in range(5)]
    rows += ["c0@example.cn,客户0,北京国贸店,O-0", "bad,坏,北京国贸店,O-9"]  # a repeated row, an unusable address
    file = tmp_path / "customers.csv"
    file.write_bytes("\n".join(rows).encode("gb18030"))
    report = tmp_path / "report.csv"
    async with running(create_app(survey_settings(service_env, mail_sender_enabled=False))) as svc, \
            svc.client() as http:
        assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
        args = ["invite", "post-visit", str(file), "--url", svc.url, "--token", "test-admin-token-123",
                "--report", str(report)]
        assert await asyncio.to_thread(cli.main, args) == 1  # one invalid row
        first = report.read_text(encoding="utf-8-sig").splitlines()
        assert first[0] == "row,invitation_id,status,reason,send_at,errors"
        statuses = [line.split(",")[2] for line in first[1:]]
        assert statuses == ["queued"] * 5 + ["skipped", "invalid"]  # row 6 is c0 again: frequency
        assert await asyncio.to_thread(cli.main, args) == 1
        again = report.read_text(encoding="utf-8-sig").splitlines()
        assert [line.split(",")[:3] for line in again] == [line.split(",")[:3] for line in first]
        count = await svc.runtime.pool.fetchval("SELECT count(*) FROM survey_requests")
        assert count == 6  # the rerun recorded nothing new
        assert await asyncio.to_thread(cli.main, ["invite", "post-visit", str(tmp_path / "none.csv"), "--url",
                                                  svc.url, "--token", "x"]) == 2
