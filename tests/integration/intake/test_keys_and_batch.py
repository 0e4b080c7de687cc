"""API keys (CLI create/list/revoke, 401/403/429, CORS per key), batches, and
logs that never carry feedback text, emails or phone numbers."""

from __future__ import annotations

import json
import logging

from services.intake.cli import keys_main
from shared.logging import JsonFormatter
from tests.integration.intake.support import dev_headers, intake, read_events
from tests.support.services import wait_until


def create_key(monkeypatch, capsys, database_url: str, *args: str) -> str:
    monkeypatch.setenv("DATABASE_URL", database_url)
    assert keys_main(["create", *args]) == 0
    return capsys.readouterr().out.strip()


async def test_key_lifecycle_channels_rate_limit_and_cors(service_env, database_url, monkeypatch, capsys):
    async with intake(service_env) as svc, svc.client() as http:
        kiosk_key = await _run(create_key, monkeypatch, capsys, database_url, "kiosk-store-12", "--channel", "kiosk",
                               "--origin", "https://kiosk.example.com", "--rate", "1", "--burst", "3")
        assert kiosk_key.startswith("km_")
        tap = {"channel": "kiosk", "rating": {"scale": "mot", "value": 2}, "location": "store-12"}
        missing = await http.post("/v1/feedback", json=tap)
        unknown = await http.post("/v1/feedback", json=tap, headers={"X-API-Key": kiosk_key[:-2] + "xx"})
        assert (missing.status_code, unknown.status_code) == (401, 401)
        ok = await http.post("/v1/feedback", json=tap, headers={"X-API-Key": kiosk_key})
        assert ok.status_code == 202, ok.text  # new key usable at once (NOTIFY or reload on miss)
        web = await http.post("/v1/feedback", json={"channel": "web", "text": "hi"}, headers={"X-API-Key": kiosk_key})
        assert web.status_code == 403 and "channel 'web'" in web.json()["detail"]
        # CORS: preflight answered for any active key's origin; actual request checked against its own key.
        pre = await http.options("/v1/feedback", headers={"Origin": "https://kiosk.example.com",
                                                           "Access-Control-Request-Method": "POST",
                                                           "Access-Control-Request-Headers": "x-api-key,content-type"})
        assert pre.status_code == 204 and pre.headers["access-control-allow-origin"] == "https://kiosk.example.com"
        assert "X-API-Key" in pre.headers["access-control-allow-headers"]
        from_browser = await http.post("/v1/feedback", json=tap,
                                       headers={"X-API-Key": kiosk_key, "Origin": "https://kiosk.example.com"})
        assert from_browser.status_code == 202
        assert from_browser.headers["access-control-allow-origin"] == "https://kiosk.example.com"
        elsewhere = await http.post("/v1/feedback", json=tap,
                                    headers={"X-API-Key": kiosk_key, "Origin": "https://evil.example.net"})
        assert elsewhere.status_code == 403
        # Burst 3 at 1/s: the third request of this second (ok + from_browser + elsewhere took 3) is limited.
        limited = await http.post("/v1/feedback", json=tap, headers={"X-API-Key": kiosk_key})
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        # The dev key is unlimited.
        dev = [await http.post("/v1/feedback", json=tap, headers=dev_headers(svc)) for _ in range(20)]
        assert {r.status_code for r in dev} == {202}
        # Revoked keys stop working without a restart.
        monkeypatch.setenv("DATABASE_URL", database_url)
        assert await _run(lambda: keys_main(["list"])) == 0
        listing = capsys.readouterr().out
        assert "kiosk-store-12" in listing and kiosk_key.split("_", 2)[2] not in listing  # never the secret
        assert await _run(lambda: keys_main(["revoke", "kiosk-store-12"])) == 0

        async def rejected() -> bool:
            r = await http.post("/v1/feedback", json=tap, headers={"X-API-Key": kiosk_key})
            return r.status_code == 401

        await wait_until(rejected, timeout=10, interval=0.2, what="revoked key rejected")


async def _run(fn, *args):
    """Run a blocking CLI function (it runs its own event loop) in a thread."""
    import asyncio

    return await asyncio.to_thread(fn, *args)


async def test_batch_accepts_valid_items_and_reports_the_rest(service_env, kafka_bootstrap, topic_prefix):
    items = [
        {"channel": "suggestion_box", "text": "洗手间很干净，谢谢", "location": "branch-3", "idempotency_key": "card-1"},
        {"channel": "kiosk", "rating": {"scale": "mot", "value": 9}},
        {"channel": "web", "text": "fine", "colour": "blue"},
        "not an object",
        {"channel": "kiosk", "rating": {"scale": "stars", "value": 5}, "location": "store-1"},
    ]
    async with intake(service_env) as svc, svc.client() as http:
        response = await http.post("/v1/feedback:batch", json=items, headers=dev_headers(svc))
        retry = await http.post("/v1/feedback:batch", json=items[:1], headers=dev_headers(svc))
        ndjson = "\n".join(json.dumps(i, ensure_ascii=False) for i in [items[4], items[2]]) + "\n"
        nd = await http.post("/v1/feedback:batch", content=ndjson.encode(),
                             headers=dev_headers(svc, **{"Content-Type": "application/x-ndjson"}))
        too_many = await http.post("/v1/feedback:batch", json=[items[4]] * 1001, headers=dev_headers(svc))
    assert response.status_code == 200
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (2, 3)
    results = body["results"]
    assert [r["index"] for r in results] == [0, 1, 2, 3, 4]
    assert "id" in results[0] and "id" in results[4]
    assert results[1]["errors"][0]["path"] == "rating"
    assert results[2]["errors"][0] == {"path": "colour", "message": "unknown field 'colour'", "type": "extra_forbidden"}
    assert results[3]["errors"][0]["type"] == "dict_type"
    assert retry.json()["results"][0]["id"] == results[0]["id"]  # idempotency_key per item
    assert nd.status_code == 200 and nd.json()["accepted"] == 1 and nd.json()["results"][1]["errors"]
    assert too_many.status_code == 413
    events = await read_events(kafka_bootstrap, f"{topic_prefix}feedback.received.v1", 4)
    assert {e.id for e in events} == {results[0]["id"], results[4]["id"], nd.json()["results"][0]["id"]}


async def test_logs_never_contain_feedback_text_emails_or_phones(service_env, caplog):
    secret_text = "我的银行卡被盗刷了三千元 card stolen XYZZY-PLUGH"
    email = "wang.fang.private@example.cn"
    phone = "+86 138 0013 8000"
    caplog.set_level(logging.DEBUG)
    async with intake(service_env) as svc, svc.client() as http:
        ok = await http.post("/v1/feedback", headers=dev_headers(svc), json={
            "channel": "phone", "text": secret_text, "customer": {"name": "王芳", "email": email, "phone": phone},
            "phone": {"agent_id": "A-1", "call_id": "C-1"}})
        bad = await http.post("/v1/feedback", headers=dev_headers(svc), json={
            "channel": "web", "text": secret_text, "customer": {"email": email + " x", "phone": phone + "#"}})
        batch = await http.post("/v1/feedback:batch", headers=dev_headers(svc), json=[
            {"channel": "web", "text": secret_text, "customer": {"email": email}}, {"channel": "web", "oops": phone}])
    assert (ok.status_code, bad.status_code, batch.status_code) == (202, 422, 200)
    formatter = JsonFormatter("intake")
    rendered = "\n".join(formatter.format(r) for r in caplog.records) + "\n".join(r.getMessage() for r in caplog.records)
    assert caplog.records, "expected some logs"
    for needle in ("XYZZY", "银行卡", email, "138 0013", "13800138000", "王芳"):
        assert needle not in rendered, needle
    assert email not in bad.text and "XYZZY" not in bad.text  # nor are inputs echoed in errors
