"""The reference for the throughput target: a bare FastAPI endpoint that only
validates the same body (``FeedbackIn``) and answers 202, served exactly like
intake (one uvicorn worker, no access log, the same garbage-collector tuning)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI

from shared.contracts import FeedbackIn
from shared.runtime import tune_gc


@contextlib.asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    tune_gc()  # the process tuning every service gets (shared.runtime.serve), so only the endpoint differs
    yield


def create_app() -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.post("/v1/feedback", status_code=202)
    async def submit(feedback: FeedbackIn) -> dict[str, str]:
        return {"id": "00000000-0000-0000-0000-000000000000"}

    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(create_app(), host="127.0.0.1", port=args.port, log_config=None, access_log=False, lifespan="on")
