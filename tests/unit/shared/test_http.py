"""The shared body limit: by declared length, by bytes received, before the app sees anything."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request

from shared.http import BodyLimit, BodyTooLarge, read_body


def _app(**kwargs) -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    seen: list[int] = []

    @app.post("/small")
    @app.post("/other")
    async def echo(request: Request) -> dict:
        seen.append(len(await request.body()))
        return {"bytes": seen[-1]}

    app.add_middleware(BodyLimit, limits={"/small": 10}, **kwargs)
    return app, seen


async def _post(app: FastAPI, path: str, content, **headers) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.post(path, content=content, headers=headers)


async def test_a_body_over_its_paths_limit_never_reaches_the_app():
    app, seen = _app(problem=lambda detail: {"detail": detail, "errors": []})

    async def chunks():
        for _ in range(5):
            yield b"abcd"

    declared = await _post(app, "/small", b"x" * 11)
    streamed = await _post(app, "/small", chunks())
    bad_length = await _post(app, "/small", b"x", **{"Content-Length": "lots"})
    ok = await _post(app, "/small", b"x" * 10)
    unlimited = await _post(app, "/other", b"y" * 100_000)
    assert (declared.status_code, declared.json()) == (413, {"detail": "body larger than 10 bytes", "errors": []})
    assert streamed.status_code == 413 and bad_length.status_code == 400
    assert ok.json() == {"bytes": 10} and unlimited.json() == {"bytes": 100_000}
    assert seen == [10, 100_000]


async def test_a_default_limit_covers_every_other_path():
    app, seen = _app(default=1000)
    refused = await _post(app, "/other", b"y" * 1001)
    assert (refused.status_code, refused.json()) == (413, {"detail": "body larger than 1000 bytes"})
    assert (await _post(app, "/small", b"x" * 11)).status_code == 413 and seen == []


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
