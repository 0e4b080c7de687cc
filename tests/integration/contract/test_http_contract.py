"""The input contract at intake's HTTP door: the issue's reproducers are 422 with the field named (never a
500), on the hot path, on the FastAPI route and in a batch alike; text is cleaned, not refused."""

from __future__ import annotations

import json

import pytest

from services.intake.app import create_app
from tests.integration.intake_channels.support import dev_key, intake_settings, received
from tests.support.services import running

pytestmark = pytest.mark.integration

REFUSED = [
    ({"channel": "web", "text": "x", "attributes": {"n": 18446744073709551616}}, "attributes.n", "2**53 - 1"),
    ({"channel": "web", "text": "x", "occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at", "between 2000-01-01"),
    ({"channel": "web", "text": "x", "occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at", "between 2000-01-01"),
    ({"channel": "web", "text": "x", "location": "store\u000012"}, "location", "U+0000"),
    ({"channel": "web", "text": "x", "touchpoint": "check\u001bout"}, "touchpoint", "U+001B"),
    ({"channel": "web", "text": "x", "customer": {"email": "a\u0000@example.com"}}, "customer.email", "U+0000"),
    ({"channel": "kiosk", "text": "x", "kiosk": {"face": 18446744073709551616}}, "kiosk.face", "less than or equal"),
]


def _raw(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=True).encode()


@pytest.mark.parametrize("hot_path", [True, False], ids=["hot-path", "fastapi-route"])
async def test_reproducers_are_422_naming_the_field(service_env, kafka_bootstrap, hot_path):
    settings = intake_settings(service_env)
    async with running(create_app(settings, hot_path=hot_path)) as svc, svc.client(
        headers={"X-API-Key": dev_key(svc), "Content-Type": "application/json"}
    ) as http:
        infinite = b'{"channel":"web","text":"x","attributes":{"n":1e400}}'  # parsed as inf
        for body, path, words in [*((_raw(p), path, words) for p, path, words in REFUSED),
                                  (infinite, "attributes.n", "finite")]:
            response = await http.post("/v1/feedback", content=body)
            assert response.status_code == 422, (body, response.text)
            [error] = response.json()["errors"]
            assert error["path"] == path and words in error["message"], response.json()

        batch = await http.post("/v1/feedback:batch", content=b"[" + b",".join(
            _raw(p) for p, _, _ in REFUSED) + b"," + _raw({"channel": "web", "text": "ok \u0000 fine"}) + b"]")
        assert batch.status_code == 200, batch.text
        results = batch.json()["results"]
        assert [r["errors"][0]["path"] for r in results[:-1]] == [path for _, path, _ in REFUSED]
        assert results[-1]["id"]

        cleaned = await http.post("/v1/feedback", content=_raw(
            {"channel": "web", "text": "排队\u0000两小时\u0007\n太久了", "customer": {"name": "王\u0000芳"}}))
        assert cleaned.status_code == 202, cleaned.text

    events = {e.id: e for e in await received(kafka_bootstrap, settings)}
    assert events[cleaned.json()["id"]].text == "排队两小时\n太久了"
    assert events[cleaned.json()["id"]].customer.name == "王芳"
    assert events[results[-1]["id"]].text == "ok  fine"
