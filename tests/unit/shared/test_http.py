"""The shared request limits: body size by declared length and by bytes received, per route
template; JSON nesting; bounded echoes. All before the app sees anything."""

from __future__ import annotations

import json
import time

import httpx
import orjson
import pytest
from fastapi import FastAPI, Request

from shared.http import (
    BodyTooLarge,
    JsonTooDeep,
    RequestLimits,
    RouteLimit,
    bounded_errors,
    check_json_depth,
    excerpt,
    json_depth,
    json_values_bound,
    read_body,
)


def _app(**kwargs) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    seen: list[int] = []

    @app.post("/small")
    @app.post("/other")
    @app.post("/s/{survey_id}/responses")
    @app.post("/raw")
    async def echo(request: Request) -> dict:
        seen.append(len(await request.body()))
        return {"bytes": seen[-1]}

    app.add_middleware(RequestLimits, **kwargs)
    return app, seen


async def _post(app: FastAPI, path: str, content, **headers) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.post(path, content=content, headers=headers)


async def test_a_body_over_its_routes_limit_never_reaches_the_app():
    app, seen = _app(limits={"/small": 10, "/s/{survey_id}/responses": 20}, default=100_000,
                     problem=lambda _, detail: {"detail": detail, "errors": []})

    async def chunks():
        for _ in range(5):
            yield b"abcd"

    declared = await _post(app, "/small", b"x" * 11)
    streamed = await _post(app, "/small", chunks())
    bad_length = await _post(app, "/small", b"x", **{"Content-Length": "lots"})
    ok = await _post(app, "/small", b"x" * 10)
    templated = await _post(app, "/s/nps-2026/responses", b"y" * 21)
    other = await _post(app, "/other", b"y" * 100_000)
    assert (declared.status_code, declared.json()) == (413, {"detail": "body larger than 10 bytes", "errors": []})
    assert streamed.status_code == 413 and bad_length.status_code == 400
    assert "connection" not in declared.headers  # a small excess is read and dropped: the sender gets its answer
    assert (templated.status_code, templated.json()["detail"]) == (413, "body larger than 20 bytes")
    assert ok.json() == {"bytes": 10} and other.json() == {"bytes": 100_000}
    assert seen == [10, 100_000]


async def test_a_large_excess_closes_the_connection_after_the_answer():
    app, seen = _app(default=1000)
    big = 2 * 1024 * 1024  # over DRAIN_BYTES
    declared = await _post(app, "/other", b"y" * big)

    async def chunks():
        for _ in range(big // 65536):
            yield b"y" * 65536

    streamed = await _post(app, "/other", chunks())
    assert (declared.status_code, declared.headers["connection"]) == (413, "close")
    assert (streamed.status_code, streamed.headers["connection"]) == (413, "close")
    assert seen == []


async def test_a_default_limit_covers_every_other_path():
    app, seen = _app(default=1000)
    refused = await _post(app, "/other", b"y" * 1001)
    assert (refused.status_code, refused.json()) == (413, {"detail": "body larger than 1000 bytes", "code": "too_large"})
    assert (await _post(app, "/small", b"x" * 1001)).status_code == 413 and seen == []
    assert (await _post(app, "/small", b"")).json() == {"bytes": 0}  # no body: passed untouched


async def test_json_nested_too_deep_is_422_before_the_app_and_other_types_are_not_scanned():
    app, seen = _app(default=1_000_000, max_json_depth=8)
    deep = b"[" * 9 + b"]" * 9
    for content_type in ("application/json", "application/merge-patch+json", "application/x-ndjson", None):
        headers = {"Content-Type": content_type} if content_type else {}
        refused = await _post(app, "/other", deep, **headers)
        assert (refused.status_code, refused.json()) == (
            422, {"detail": "the JSON is nested deeper than 8 levels", "code": "too_deep"}), content_type
    assert seen == []
    assert (await _post(app, "/other", b"[" * 8 + b"]" * 8, **{"Content-Type": "application/json"})).status_code == 200
    assert (await _post(app, "/other", deep, **{"Content-Type": "text/csv"})).status_code == 200


async def test_a_route_that_checks_its_json_itself_is_not_scanned():
    app, seen = _app(limits={"/raw": RouteLimit(1_000_000, checks_json=True)}, max_json_depth=8)
    deep = b"[" * 100 + b"]" * 100
    assert (await _post(app, "/raw", deep, **{"Content-Type": "application/json"})).status_code == 200
    assert (await _post(app, "/other", deep, **{"Content-Type": "application/json"})).status_code == 422


async def test_read_body_stops_at_the_limit():
    messages = iter([{"type": "http.request", "body": b"ab", "more_body": True},
                     {"type": "http.request", "body": b"cd", "more_body": False}])

    async def receive():
        return next(messages)

    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=3)
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=3, declared=4)

    async def gone():
        return {"type": "http.disconnect"}

    assert await read_body(gone, limit=3) is None


@pytest.mark.parametrize(("text", "depth"), [
    (b"1", 0), (b'"[[[["', 0), (b"[]", 1), (b'{"a": [1, {"b": []}]}', 4),
    (b'["a\\"[[[", {"b": "\\\\"}, [[]]]', 3),       # an escaped quote does not end the string
    (b'["\\\\", [[]]]', 3),                          # an escaped backslash before the closing quote
    (b'["\\u005c", [[[]]]]', 4),                      # an escape that is not a quote leaves the string alone
    (b'[{"k": "]]]}}}"}, [[{"x": "[[["}]]]', 4),
])
def test_json_depth_counts_brackets_outside_strings(text, depth):
    assert json_depth(text) == depth
    json.loads(text)  # each case is valid JSON


def test_check_json_depth_refuses_only_what_is_deeper_than_the_limit():
    check_json_depth(b"[" * 32 + b"]" * 32, 32)
    check_json_depth(b"[" + b"[[]]," * 1000 + b"[]]", 32)  # many brackets, shallow
    with pytest.raises(JsonTooDeep):
        check_json_depth(b"[" * 33 + b"]" * 33, 32)
    with pytest.raises(JsonTooDeep):  # deep after a shallow stretch
        check_json_depth(b"[" + b"[],"*5000 + b"{\"a\":" * 40 + b"1" + b"}" * 40 + b"]", 32)


def test_a_100000_deep_body_costs_little():
    deep = b"[" * 100_000 + b"]" * 100_000
    started = time.process_time()
    for _ in range(10):
        with pytest.raises(JsonTooDeep):
            check_json_depth(deep, 32)
    assert time.process_time() - started < 2.0  # a generous bound: ~10 ms each on the reference machine


def test_values_bound_counts_structure_outside_strings():
    batch = orjson.dumps([{"channel": "web", "text": "a, b: c, d, e [f] {g}" * 20}] * 10)
    parsed = 1 + 10 * (1 + 2 + 2)  # an array of ten objects with two keys and two values each
    assert json_values_bound(batch, budget=10_000) > 10 * 20 * 3  # the raw count: punctuation in text included
    assert json_values_bound(batch, budget=parsed - 1) == parsed  # over the budget: strings left out
    tiny = b"[" + b"{}," * 100_000 + b"{}]"
    assert json_values_bound(tiny, budget=1000) > 100_000


def test_excerpt_and_bounded_errors_never_echo_more_than_a_bounded_piece():
    assert excerpt("x" * 10_000) == "x" * 99 + "…"
    assert excerpt(12) == 12 and excerpt(None) is None
    assert len(excerpt({"k": "v" * 10_000})) == 100
    nested: list = []
    for _ in range(5000):  # too deep for any renderer
        nested = [nested]
    assert excerpt(nested) == "<list>"
    errors = [{"type": "missing", "loc": ("body", "k" * 5000), "msg": "Field required", "input": "v" * 10_000,
               "ctx": {"secret": "x"}, "url": "https://errors.pydantic.dev"}] * 50
    bounded = bounded_errors(errors)
    assert len(bounded) == 21 and bounded[-1] == {"type": "too_many_errors", "loc": [], "msg": "30 more errors not listed"}
    assert bounded[0] == {"type": "missing", "loc": ["body", "k" * 99 + "…"], "msg": "Field required",
                          "input": "v" * 99 + "…"}
    assert len(orjson.dumps(bounded)) < 6000
