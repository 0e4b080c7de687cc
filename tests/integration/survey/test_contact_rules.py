"""The contact rules on a real stack: a burst sends exactly what they allow, an unsubscribe
(mail header and page) and a suppression stop every later invitation, quiet hours follow
the customer's time zone on a manual clock."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from services.survey import invitations, suppressions, tokens
from services.survey.app import create_app
from shared.clock import ManualClock
from shared.mail import queue
from tests.integration.survey.support import (
    ADMIN,
    CollectingSmtp,
    SmtpServer,
    invitation,
    path_of,
    post_visit,
    survey_settings,
    unsubscribe_link,
)
from tests.support.services import running, wait_until

pytestmark = pytest.mark.integration


async def _is(value, expected) -> bool:
    return await value == expected


async def _metric(http, name: str, **labels: str) -> float:
    text = (await http.get("/metrics")).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_a_burst_of_1000_invitations_for_100_customers_sends_exactly_what_the_rules_allow(service_env):
    """Within a minute, 20 clients at once: customers 0-49 are invited 10 times each to a survey on the
    default rules (one invitation per 30 days), customers 50-99 10 times each to one allowing three per
    30 days (its own invitations only, no gap)."""
    three = post_visit("three-a-month", contact_rules={"max_invitations": 3, "window_days": 30, "scope": "survey",
                                                       "min_days_between": 0})
    asks = [invitation("post-visit", f"c{c:03d}@example.cn", key=f"visit-{c}-{n}") for c in range(50) for n in range(10)]
    asks += [invitation("three-a-month", f"c{c:03d}@example.cn", key=f"visit-{c}-{n}")
             for c in range(50, 100) for n in range(10)]
    random.Random(15).shuffle(asks)
    with SmtpServer(CollectingSmtp()) as smtp:
        settings = survey_settings(service_env, smtp.port, mail_concurrency=4, database_pool_max=30)
        async with running(create_app(settings)) as svc, svc.client() as http:
            for definition in (post_visit(), three):
                assert (await http.post("/v1/surveys", json=definition, headers=ADMIN)).status_code == 201
            answers: list[dict] = []
            pending = list(asks)
            started = asyncio.get_running_loop().time()

            async def client() -> None:
                while pending:
                    body = pending.pop()
                    response = await http.post("/v1/invitations", json=body, headers=ADMIN)
                    assert response.status_code == 202, response.text
                    answers.append(body | {"answer": response.json()})

            await asyncio.gather(*(client() for _ in range(20)))
            elapsed = asyncio.get_running_loop().time() - started
            assert elapsed < 60, f"the burst took {elapsed:.0f}s, not one minute"

            statuses = Counter((a["survey_id"], a["answer"]["status"], a["answer"].get("reason")) for a in answers)
            assert statuses == {("post-visit", "queued", None): 50, ("post-visit", "skipped", "frequency"): 450,
                                ("three-a-month", "queued", None): 150, ("three-a-month", "skipped", "frequency"): 350}

            async def all_sent() -> bool:  # every queued mail settled: nothing more can arrive
                async with svc.runtime.pool.acquire() as conn:
                    return await queue.state_counts(conn, purpose="survey_invitation") == {"sent": 200}

            await wait_until(all_sent, timeout=60, what="200 invitation mails sent")
            per_customer = Counter(r[0] for r in smtp.recipients)
            assert len(smtp.messages) == 200
            assert all(per_customer[f"c{c:03d}@example.cn"] == 1 for c in range(50))
            assert all(per_customer[f"c{c:03d}@example.cn"] == 3 for c in range(50, 100))
            assert await _metric(http, "keymoment_survey_invitations_decided_total", reason="frequency") == 800
            assert await _metric(http, "keymoment_survey_invitations_decided_total", status="queued") == 200


async def test_unsubscribe_by_mail_header_and_page_outranks_every_other_reason(service_env, database_url):
    with SmtpServer(CollectingSmtp()) as smtp:
        async with running(create_app(survey_settings(service_env, smtp.port))) as svc, svc.client() as http:
            assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
            assert (await http.post("/v1/surveys", json=post_visit("kept-apart", contact_rules={
                "scope": "survey", "min_days_between": 0}), headers=ADMIN)).status_code == 201
            first = await http.post("/v1/invitations", headers=ADMIN,
                                    json=invitation("post-visit", "li.wei@example.cn", key="a"))
            await wait_until(lambda: len(smtp.messages) == 1, timeout=20, what="the invitation mail")
            one_click = unsubscribe_link(smtp.messages[0])

            # a person opening the link sees a confirm page; opening it unsubscribes nothing
            page = await http.get(path_of(one_click), headers={"Accept-Language": "zh-CN"})
            assert page.status_code == 200 and "l***@example.cn" in page.text and "li.wei" not in page.text
            assert "确认退订" in page.text and f'action="{path_of(one_click)}"' in page.text
            async with svc.runtime.pool.acquire() as conn:
                assert await suppressions.is_suppressed(conn, svc.app.state.context.settings.privacy_key(),
                                                        "li.wei@example.cn") is None
            # the mail client's one-click button (RFC 8058): a POST, no cookie, no login
            done = await http.post(path_of(one_click), content=b"List-Unsubscribe=One-Click",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            assert done.status_code == 200 and "您已退订" in done.text
            assert (await http.post(path_of(one_click), data={"confirm": "1"})).status_code == 200  # twice: fine
            assert "您已退订" in (await http.get(path_of(one_click))).text
            assert (await http.get("/u/forged.token")).status_code == 404

            # later invitations, to any survey, even one whose frequency rule would allow it: unsubscribed
            for survey_id in ("post-visit", "kept-apart"):
                later = await http.post("/v1/invitations", headers=ADMIN,
                                        json=invitation(survey_id, "LI.WEI@example.cn", key=f"later-{survey_id}"))
                assert (later.json()["status"], later.json()["reason"]) == ("skipped", "unsubscribed")
            steps = (await http.get(f"/v1/invitations/{first.json()['invitation_id']}", headers=ADMIN)).json()
            assert "unsubscribed" in steps["steps"]
            assert await _metric(http, "keymoment_survey_unsubscribes_total") == 1
    assert len(smtp.messages) == 1


async def test_suppressed_and_bounced_addresses_are_never_invited(service_env):
    with SmtpServer(CollectingSmtp()) as smtp:
        smtp.refuse["nobody@example.cn"] = "550 5.1.1 no such mailbox"
        settings = survey_settings(service_env, smtp.port, survey_max_invitations=5, survey_min_days_between=0)
        async with running(create_app(settings)) as svc, svc.client() as http:
            assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
            key = svc.app.state.context.settings.privacy_key()
            async with svc.runtime.pool.acquire() as conn:
                await suppressions.suppress(conn, key, "erased@example.cn", reason="erased", at=datetime.now(UTC))
            erased = await http.post("/v1/invitations", headers=ADMIN, json=invitation("post-visit", "erased@example.cn"))
            assert (erased.json()["status"], erased.json()["reason"]) == ("skipped", "suppressed")

            bounced = await http.post("/v1/invitations", headers=ADMIN, json=invitation("post-visit", "nobody@example.cn"))
            assert bounced.json()["status"] == "queued"

            async def listed() -> bool:
                async with svc.runtime.pool.acquire() as conn:
                    return await suppressions.is_suppressed(conn, key, "nobody@example.cn") == "bounced"

            await wait_until(listed, timeout=20, what="the refused address suppressed as bounced")
            again = await http.post("/v1/invitations", headers=ADMIN, json=invitation("post-visit", "nobody@example.cn"))
            assert (again.json()["status"], again.json()["reason"]) == ("skipped", "suppressed")
    assert smtp.messages == []


SHANGHAI_2230 = datetime(2026, 12, 1, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai, 14:30 in London


async def test_quiet_hours_in_the_customers_time_zone_on_a_manual_clock(service_env):
    clock = ManualClock(SHANGHAI_2230)
    with SmtpServer(CollectingSmtp()) as smtp:
        settings = survey_settings(service_env, smtp.port, survey_quiet_hours="21:00-08:00", survey_max_invitations=9,
                                   survey_min_days_between=0)
        async with running(create_app(settings, clock=clock)) as svc, svc.client() as http:
            assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
            skipping = post_visit("no-night", contact_rules={"quiet_hours": {"start": "22:00", "end": "07:00",
                                                                              "mode": "skip"}})
            assert (await http.post("/v1/surveys", json=skipping, headers=ADMIN)).status_code == 201

            night = await http.post("/v1/invitations", headers=ADMIN,
                                    json=invitation("post-visit", "li.wei@example.cn", key="n1"))
            assert night.json()["status"] == "queued"
            assert night.json()["send_at"] == "2026-12-02T08:00:00+08:00"  # the end of the customer's night
            withdrawn = await http.post("/v1/invitations", headers=ADMIN,
                                        json=invitation("post-visit", "wang.fang@example.cn", key="n2"))
            london = invitation("post-visit", "james@example.co.uk", key="n3")
            london["customer"]["time_zone"] = "Europe/London"
            afternoon = await http.post("/v1/invitations", headers=ADMIN, json=london)
            assert afternoon.json()["status"] == "queued" and "send_at" not in afternoon.json()
            skipped = await http.post("/v1/invitations", headers=ADMIN,
                                      json=invitation("no-night", "zhao.lei@example.cn", key="n4"))
            assert (skipped.json()["status"], skipped.json()["reason"]) == ("skipped", "quiet_hours")

            await wait_until(lambda: len(smtp.messages) == 1, timeout=20, what="London's invitation")
            # wang.fang unsubscribes (through her deferred invitation's link) before morning: it is withdrawn
            ctx = svc.app.state.context
            link = tokens.sign_unsubscribe(ctx.links, request_id=withdrawn.json()["invitation_id"], now=clock.now())
            assert (await http.post(f"/u/{link}", content=b"List-Unsubscribe=One-Click")).status_code == 200
            rounds = ctx.mail.rounds
            await wait_until(lambda: ctx.mail.rounds >= rounds + 3, timeout=10, what="the sender looked again")
            assert [r[0] for r in smtp.recipients] == ["james@example.co.uk"], "nothing during Shanghai's night"

            clock.advance(hours=9, minutes=29)  # 07:59 in Shanghai
            rounds = ctx.mail.rounds
            await wait_until(lambda: ctx.mail.rounds >= rounds + 3, timeout=10, what="the sender looked again")
            assert len(smtp.messages) == 1
            clock.advance(minutes=1, seconds=1)  # 08:00:01
            ctx.mail.wake()
            await wait_until(lambda: len(smtp.messages) == 2, timeout=20, what="the deferred invitation at 08:00")
            assert smtp.recipients[1] == ["li.wei@example.cn"]

            async def state(invited) -> str:
                async with svc.runtime.pool.acquire() as conn:
                    return (await invitations.delivery(conn, invited.json()["invitation_id"])).state

            await wait_until(lambda: _is(state(night), "sent"), timeout=10, what="the deferred invitation sent")
            assert await state(withdrawn) == "withdrawn"
            mail_date = smtp.messages[1]["Date"].datetime
            assert abs(mail_date - clock.now()) < timedelta(minutes=2)  # dated when sent, not when decided
