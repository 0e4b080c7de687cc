"""The image's contents and entrypoint, run for real without Docker.

The four services are started the way the container starts them
(``python -m keymoment serve SERVICE``, ``PYTHONPATH`` = the tree the
Dockerfile copies, filtered by .dockerignore, files read-only) with the
environment docker-compose gives them (``KEYMOMENT_ENV=production``, its
secrets), only the broker, database and port swapped for the test harness's.
Each must become ready, serve metrics and stop cleanly on SIGTERM. This
catches what the static checks cannot: a data file left out of the build
context, an entrypoint that does not start, a production setting the service
rejects at start-up.
"""

from __future__ import annotations

import os
import shutil
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from keymoment.devstack.ports import free_port
from tests.deploy.support import (
    ROOT,
    SERVICES,
    environment,
    interpolate_tree,
    load_compose,
    operator_env,
)
from tests.deploy.test_image import in_context, instructions
from tests.support.services import wait_until

pytestmark = pytest.mark.integration


def image_tree(target: Path) -> Path:
    """The files the Dockerfile copies into /app, through .dockerignore, made read-only."""
    app = target / "app"
    for args in instructions("COPY"):
        if "--from" in args:
            continue
        *sources, _ = args.split()
        for source in sources:
            if source in ("pyproject.toml", "constraints.txt"):
                continue  # dependency stage only
            for path in (ROOT / source).rglob("*"):
                relative = path.relative_to(ROOT).as_posix()
                if path.is_file() and in_context(relative):
                    destination = app / relative
                    destination.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(path, destination)
    for path in app.rglob("*"):
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    return app


@pytest.fixture
def image_app(tmp_path):
    app = image_tree(tmp_path)
    yield app
    for path in app.rglob("*"):  # let tmp_path cleanup delete it
        path.chmod(path.stat().st_mode | stat.S_IWUSR)


def process_env(app: Path, compose_env: dict[str, str], overrides: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key in ("PATH", "LANG", "LC_ALL", "TZ", "HOME")}
    env.update(compose_env)
    env.update(overrides)
    env.update(PYTHONPATH=str(app), PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
    return env


async def test_every_service_starts_from_the_image_tree_with_the_compose_environment(
    image_app, tmp_path, kafka_bootstrap, database_url, topic_prefix
):
    compose = interpolate_tree(load_compose(), operator_env(load_compose()))
    workdir = tmp_path / "cwd"  # not the repository: nothing may be imported from there
    workdir.mkdir()
    routes = image_app / "services" / "alerts" / "routes.example.yaml"
    assert routes.is_file(), "alerts' example routes are not in the image"

    # The compose file's migration step first: the services start with MIGRATE_ON_START=false.
    migrate_env = environment(compose["services"]["migrate"])
    for name in SERVICES:
        step = subprocess.run(
            [sys.executable, "-m", "keymoment", "migrate", name], cwd=workdir, capture_output=True, text=True,
            env=process_env(image_app, migrate_env, {"DATABASE_URL": database_url}), timeout=120, check=False,
        )
        assert step.returncode == 0, f"keymoment migrate {name}:\n{step.stdout}{step.stderr}"

    procs: dict[str, tuple[subprocess.Popen, int, Path]] = {}
    tokens: dict[str, str | None] = {}
    try:
        for name in SERVICES:
            port = free_port()
            compose_env = environment(compose["services"][name])
            assert compose_env["KEYMOMENT_ENV"] == "production"
            overrides = {
                "HOST": "127.0.0.1",
                "PORT": str(port),
                "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "KAFKA_TOPIC_PREFIX": topic_prefix,
                "KAFKA_TOPIC_PARTITIONS": "2",
                "KAFKA_CONSUMER_GROUP": f"{name}-{uuid.uuid4().hex[:8]}",
                "KAFKA_SESSION_TIMEOUT_MS": "3000",
                "DATABASE_URL": database_url,
                "SMTP_HOST": "127.0.0.1",
                "SMTP_PORT": str(free_port()),
            }
            for key in compose_env:  # extra listeners (intake's SMTP): loopback, free port, never a fixed one
                if key.startswith(f"{name.upper()}_") and key.endswith("_PORT"):
                    overrides[key] = str(free_port())
                if key.startswith(f"{name.upper()}_") and key.endswith("_HOST"):
                    overrides[key] = "127.0.0.1"
            if "ALERTS_ROUTES_FILE" in compose_env:
                overrides["ALERTS_ROUTES_FILE"] = str(routes)
            log = tmp_path / f"{name}.log"
            proc = subprocess.Popen(
                [sys.executable, "-m", "keymoment", "serve", name],
                cwd=workdir, env=process_env(image_app, compose_env, overrides),
                stdout=log.open("wb"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
            procs[name] = (proc, port, log)
            tokens[name] = compose_env.get("METRICS_TOKEN")  # reporting's /metrics serves the KPIs

        async with httpx.AsyncClient(timeout=2) as client:
            for name, (proc, port, log) in procs.items():
                async def ready(proc=proc, port=port) -> bool:
                    assert proc.poll() is None, "exited during start-up"
                    try:
                        return (await client.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200
                    except httpx.HTTPError:
                        return False

                try:
                    await wait_until(ready, timeout=60, interval=0.2, what=f"{name} /readyz")
                except AssertionError as exc:
                    raise AssertionError(f"{name}: {exc}\n--- log ---\n{log.read_text(errors='replace')[-3000:]}") from exc
                token = tokens[name]
                metrics = await client.get(f"http://127.0.0.1:{port}/metrics",
                                           headers={"Authorization": f"Bearer {token}"} if token else {})
                assert metrics.status_code == 200 and "keymoment_" in metrics.text
                if token:  # as Prometheus scrapes it; anyone else gets 401
                    assert (await client.get(f"http://127.0.0.1:{port}/metrics")).status_code == 401

        for name, (proc, _, log) in procs.items():
            proc.send_signal(signal.SIGTERM)
        for name, (proc, _, log) in procs.items():
            code = proc.wait(timeout=20)
            text = log.read_text(errors="replace")
            # uvicorn finishes the lifespan, then re-raises the signal it caught (exit 143 in a container).
            assert code in (0, -signal.SIGTERM), f"{name} exited {code} on SIGTERM\n{text[-3000:]}"
            assert "Application shutdown complete" in text, f"{name} did not shut down cleanly\n{text[-3000:]}"
            assert "Traceback" not in text, f"{name} logged a traceback\n{text[-3000:]}"
    finally:
        for proc, _, _ in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)
