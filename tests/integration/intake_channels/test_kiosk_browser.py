"""The kiosk page in headless Chromium: a tap made offline arrives exactly once
when the network returns, and a lost response does not double a tap."""

import pytest

from services.intake import repository
from services.intake.app import create_app
from services.intake.keys import hash_key, new_key
from tests.integration.intake_channels.support import intake_settings, received
from tests.support.browser import CHROMIUM_ARGS, chromium  # noqa: F401  (a fixture)
from tests.support.services import running, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.browser]

QUEUE = "JSON.parse(localStorage.getItem('keymoment.kiosk.queue') || '[]')"


async def test_offline_tap_arrives_once_and_a_lost_response_does_not_double(chromium, service_env, kafka_bootstrap):
    from playwright.async_api import async_playwright

    settings = intake_settings(service_env)
    async with running(create_app(settings)) as intake, async_playwright() as pw:
        # A kiosk key: channel kiosk only, usable only from intake's own origin (where the page is served).
        key_id, key = new_key()
        await repository.insert_key(
            intake.runtime.pool, key_id=key_id, name="kiosk-store-12", secret_sha256=hash_key(key),
            channels=["kiosk"], origins=[intake.url], rate_per_second=5, burst=20,
        )
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context()
            page = await context.new_page()
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            await page.goto(f"{intake.url}/kiosk?location=store-12&touchpoint=exit&lang=en&reset=1#key={key}")
            await page.wait_for_selector("[data-testid=face-3]")
            # The key left the address bar and never went over the wire.
            assert "#key" not in page.url and await page.evaluate("localStorage.getItem('keymoment.kiosk.apiKey')") == key
            assert not any(key in url for url in requests)
            assert await page.locator(".face").count() == 7
            assert await page.text_content("#question") == "How was your experience today?"
            await page.click("[data-testid=lang]")
            assert await page.text_content("#question") == "您对本次服务满意吗？"
            assert await page.get_attribute("html", "lang") == "zh-CN"

            # --- offline: the tap is queued, the kiosk thanks the customer anyway ---
            await context.set_offline(True)
            await page.click("[data-testid=face-2]")
            await page.fill("[data-testid=comment]", "排队太久了，只开了一个收银台")
            await page.click("[data-testid=send]")
            await page.wait_for_selector("[data-testid=thanks]", state="visible")
            queued = await page.evaluate(QUEUE)
            assert len(queued) == 1 and queued[0]["ready"] and queued[0]["body"]["rating"] == {"scale": "mot", "value": -2}
            await page.wait_for_selector("[data-testid=face-3]", state="visible", timeout=10_000)  # automatic reset
            assert await page.get_attribute("#status", "data-pending") == "1"
            assert await received(kafka_bootstrap, settings) == []

            # --- back online: the queue drains by itself ---
            await context.set_offline(False)

            async def drained() -> bool:
                return await page.evaluate(QUEUE + ".length") == 0

            await wait_until(drained, timeout=30, what="the kiosk queue to drain after going online")
            events = await received(kafka_bootstrap, settings)
            assert len(events) == 1
            [event] = events
            assert (event.channel, event.rating.value, event.location, event.touchpoint) == ("kiosk", -2, "store-12", "exit")
            assert event.text == "排队太久了，只开了一个收银台" and event.kiosk.face == -2 and event.source == "kiosk-store-12"
            assert event.language == "zh" and event.kiosk.device_id.startswith("kiosk-")

            # --- the page itself reloads offline (service worker cache) and keeps its key ---
            await page.evaluate("navigator.serviceWorker.ready")
            await wait_until(lambda: page.evaluate("!!navigator.serviceWorker.controller"), timeout=10, what="service worker")
            await context.set_offline(True)
            await page.reload()
            await page.wait_for_selector("[data-testid=face3]", state="visible")
            await context.set_offline(False)

            # --- a response lost on the way back: the kiosk resends, the id is the same ---
            lost = []

            async def lose_first_response(route):
                if not lost:
                    await route.fetch()  # intake receives and accepts it ...
                    lost.append(route.request.headers["idempotency-key"])
                    await route.abort("connectionreset")  # ... but the kiosk never hears back
                else:
                    await route.continue_()

            await page.route("**/v1/feedback", lose_first_response)
            await page.click("[data-testid=face3]")
            await page.click("[data-testid=skip]")
            await wait_until(drained, timeout=30, what="the kiosk queue to drain after a lost response")
            events = await received(kafka_bootstrap, settings)
        finally:
            await browser.close()

    assert len(lost) == 1
    second = [e for e in events if e.id != event.id]
    assert len(second) == 2, "the resend reached the broker a second time"
    assert len({e.id for e in second}) == 1  # ... with the same event id: one event in effect for every consumer
    assert second[0].rating.value == 3 and second[0].text is None
