"""POST /v1/feedback is answered by a plain ASGI hot path in front of FastAPI's
route; the two must answer every request alike (status, body, headers that
matter), and the hot path must keep the route's metrics label."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest

from services.intake.app import create_app
from services.intake.cli import keys_main
from tests.integration.intake.support import intake_settings
from tests.support.services import running

ORIGIN = "https://kiosk.example.com"
TAP = {"channel": "kiosk", "rating": {"scale": "mot", "value": 2}, "location": "store-12"}


async def _key(monkeypatch, capsys, database_url: str, *args: str) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert await asyncio.to_thread(keys_main, ["create", *args]) == 0
    return capsys.readouterr().out.strip()


def _requests(dev: str, kiosk: str, idem: str) -> list[tuple[str, dict, object]]:
    """(name, headers, body): one of each answer the route can give. A body is sent as
    JSON, or as it is when it is bytes (with only the Content-Type the headers name)."""
    tap = json.dumps(TAP).encode()
    return [
        ("accepted, idempotent", {"X-API-Key": dev, "Idempotency-Key": idem}, {"channel": "web", "text": "好"}),
        ("retry of it", {"X-API-Key": dev, "Idempotency-Key": idem}, {"channel": "web", "text": "好"}),
        ("no key", {}, TAP),
        ("unknown key", {"X-API-Key": kiosk[:-2] + "xx"}, TAP),
        ("malformed key", {"X-API-Key": "hello"}, TAP),
        ("invalid fields", {"X-API-Key": dev},
         {"channel": "web", "text": "ok", "colour": "red", "rating": {"scale": "mot", "value": 5},
          "customer": {"email": "not-an-email"}}),
        ("nothing to say", {"X-API-Key": dev}, {"channel": "web"}),
        ("not an object", {"X-API-Key": dev}, ["channel", "web"]),
        ("idempotency key too long", {"X-API-Key": dev, "Idempotency-Key": "k" * 201}, TAP),
        ("long key and bad body", {"X-API-Key": dev, "Idempotency-Key": "k" * 201}, {"channel": "fax"}),
        ("bad body, unknown key", {"X-API-Key": "km_nobody_secret"}, {"channel": "fax"}),
        ("channel not allowed", {"X-API-Key": kiosk}, {"channel": "web", "text": "hi"}),
        ("browser, allowed origin", {"X-API-Key": kiosk, "Origin": ORIGIN, "Idempotency-Key": idem}, TAP),
        ("browser, other origin", {"X-API-Key": kiosk, "Origin": "https://evil.example.net"}, TAP),
        ("wrong content type", {"X-API-Key": dev, "Content-Type": "text/plain"}, tap),
        ("form post", {"X-API-Key": dev, "Content-Type": "application/x-www-form-urlencoded"}, b"channel=web&text=hi"),
        ("absent content type", {"X-API-Key": dev}, tap),
        ("empty body", {"X-API-Key": dev, "Content-Type": "application/json"}, b""),
        ("empty body, no content type", {"X-API-Key": dev}, b""),
        ("wrong content type, unknown key", {"X-API-Key": "km_nobody_secret", "Content-Type": "text/plain"}, tap),
        ("no content type, long key, bad body", {"X-API-Key": dev, "Idempotency-Key": "k" * 201}, b"{nope"),
        ("JSON with a charset", {"X-API-Key": dev, "Content-Type": "application/json; charset=utf-8",
                                 "Idempotency-Key": f"{idem}-charset"}, tap),
        ("JSON of a suffix type", {"X-API-Key": dev, "Content-Type": "application/vnd.keymoment+json",
                                   "Idempotency-Key": f"{idem}-suffix"}, tap),
        ("rate limited", {"X-API-Key": kiosk}, TAP),  # burst 2: taken by "channel not allowed" and "browser, allowed origin"
    ]


def _answer(response: httpx.Response) -> tuple:
    headers = {k: response.headers.get(k) for k in ("content-type", "retry-after", "access-control-allow-origin")}
    if "retry-after" in headers and headers["retry-after"] is not None:
        headers["retry-after"] = int(headers["retry-after"]) >= 1
    return response.status_code, response.json(), headers


async def test_hot_path_answers_exactly_like_the_fastapi_route(service_env, database_url, monkeypatch, capsys):
    settings = intake_settings(service_env)
    async with running(create_app(settings)) as hot, running(create_app(settings, hot_path=False)) as plain:
        kiosk = await _key(monkeypatch, capsys, database_url, f"kiosk-{uuid.uuid4().hex[:6]}", "--channel", "kiosk",
                           "--origin", ORIGIN, "--rate", "0.001", "--burst", "2")
        dev = settings.dev_api_key.get_secret_value()
        idem = f"form-{uuid.uuid4()}"
        answers = {}
        for service in (hot, plain):
            await service.app.state.context.keys.reload()  # the key created above, without waiting for NOTIFY
            async with service.client() as http:
                answers[service] = [
                    (name, _answer(await (http.post("/v1/feedback", headers=headers, content=body)
                                          if isinstance(body, bytes) else
                                          http.post("/v1/feedback", headers=headers, json=body))))
                    for name, headers, body in _requests(dev, kiosk, idem)
                ]
        async with hot.client() as http:
            metrics = (await http.get("/metrics")).text

    for (name, got), (_, want) in zip(answers[hot], answers[plain], strict=True):
        if name == "not an object":  # pydantic's JSON mode words it better ("Input should be an object")
            assert (got[0], [e["path"] for e in got[1]["errors"]]) == (want[0], [e["path"] for e in want[1]["errors"]])
            continue
        assert got == want, name
    statuses = [status for _, (status, _, _) in answers[hot]]
    assert statuses == [202, 202, 401, 401, 401, 422, 422, 422, 422, 422, 401, 403, 202, 403,
                        415, 415, 415, 422, 415, 401, 415, 202, 202, 429]
    by_name = dict(answers[hot])
    assert by_name["empty body"][1]["errors"][0]["type"] == "json_invalid"
    assert "application/json" in by_name["wrong content type"][1]["detail"]
    assert answers[hot][0][1][1] == answers[hot][1][1][1]  # the retry got the same id
    assert 'route="/v1/feedback",service="intake",status="202"' in metrics


@pytest.mark.parametrize("body", [b"{nope", b"", b"\xff\xfe"])
async def test_hot_path_rejects_bodies_that_are_not_json(service_env, body):
    settings = intake_settings(service_env)
    async with running(create_app(settings)) as hot, hot.client() as http:
        response = await http.post("/v1/feedback", content=body, headers={
            "X-API-Key": settings.dev_api_key.get_secret_value(), "Content-Type": "application/json"})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["type"] == "json_invalid" and error["path"] == ""
