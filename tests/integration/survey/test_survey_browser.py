"""A customer's invitation in headless Chromium: the link from the mail the SMTP server took,
answered in Chinese with a drawn face and a comment, left and reopened (the partial answer is
kept), submitted (thank-you page); a second submit from another tab is refused (409, "already
answered"). Screenshots of each step are written to the test's tmp_path."""

from __future__ import annotations

import pytest

from services.survey.app import create_app
from tests.integration.survey.support import (
    ADMIN,
    CollectingSmtp,
    SmtpServer,
    invitation,
    path_of,
    post_visit,
    survey_link,
    survey_settings,
)
from tests.support.browser import CHROMIUM_ARGS, chromium  # noqa: F401  (a fixture)
from tests.support.services import running, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

COMMENT = "排队太久了，不过收银员很耐心，谢谢！"


async def test_an_invitation_answered_in_chinese_left_reopened_submitted_and_refused_twice(
        chromium, service_env, tmp_path):
    from playwright.async_api import async_playwright

    with SmtpServer(CollectingSmtp()) as smtp:
        async with running(create_app(survey_settings(service_env, smtp.port))) as svc, svc.client() as http, \
                async_playwright() as pw:
            assert (await http.post("/v1/surveys", json=post_visit(), headers=ADMIN)).status_code == 201
            invited = await http.post("/v1/invitations", headers=ADMIN,
                                      json=invitation("post-visit", "li.wei@example.cn", key="browser-1"))
            assert invited.json()["status"] == "queued"
            await wait_until(lambda: len(smtp.messages) == 1, timeout=20, what="the invitation mail")
            link = svc.url + path_of(survey_link(smtp.messages[0], "post-visit"))

            browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                context = await browser.new_context(locale="zh-CN", viewport={"width": 420, "height": 1100})
                page = await context.new_page()
                errors: list[str] = []  # script errors, and anything but the browser's own favicon refused
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("response", lambda r: errors.append(f"{r.status} {r.url}")
                        if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
                await page.goto(link)
                assert await page.get_attribute("html", "lang") == "zh-CN"
                assert await page.text_content("h1") == "本次到店体验如何？How was your visit?"
                assert await page.locator(".mot svg").count() == 7  # the kiosk's drawn faces

                # a face and a comment; the page keeps them as they are given
                async with page.expect_response(lambda r: r.url.endswith("/draft") and r.status == 204):
                    await page.click('label[for="q-feeling--2"]')
                async with page.expect_response(lambda r: r.url.endswith("/draft") and r.status == 204):
                    await page.fill("#q-comment", COMMENT)
                await page.screenshot(path=str(tmp_path / "1-answered.png"), full_page=True)

                # leave, then come back through the mail's link
                await page.goto("about:blank")
                await page.goto(link)
                assert await page.is_checked("#q-feeling--2")
                assert await page.input_value("#q-comment") == COMMENT
                await page.screenshot(path=str(tmp_path / "2-reopened.png"), full_page=True)

                second = await context.new_page()  # the same link open in another tab
                await second.goto(link)
                await second.click('label[for="q-feeling-1"]')

                await page.click("button[type=submit]:not([formaction])")
                await page.wait_for_selector("h1[role=status]")
                assert "感谢您的反馈" in await page.text_content("h1")
                await page.screenshot(path=str(tmp_path / "3-thanks.png"), full_page=True)

                response = None

                async def remember(r) -> None:
                    nonlocal response
                    if r.url.endswith("/responses"):
                        response = r

                second.on("response", remember)
                await second.click("button[type=submit]:not([formaction])")
                await second.wait_for_selector("h1[role=status]")
                assert "您已回答过此问卷" in await second.text_content("h1")
                assert response is not None and response.status == 409
                await second.screenshot(path=str(tmp_path / "4-second-submit.png"), full_page=True)
                assert errors == [], errors
            finally:
                await browser.close()

            state = (await http.get(f"/v1/invitations/{invited.json()['invitation_id']}", headers=ADMIN)).json()
            assert {"opened", "started", "completed"} <= set(state["steps"])
            answers = await svc.runtime.pool.fetchval("SELECT answers FROM survey_responses")
            assert '"feeling": -2' in answers and COMMENT in answers
