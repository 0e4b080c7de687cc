"""The root Dockerfile and .dockerignore, checked statically (no Docker
daemon needed): the build context holds every file the services need at run
time and nothing else of note; the image runs as the same unprivileged user
compose and Kubernetes declare; every service's port is exposed."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from tests.deploy.kustomize import build
from tests.deploy.support import ROOT, SERVICES, default_port

DOCKERFILE = (ROOT / "Dockerfile").read_text(encoding="utf-8")
IGNORE = [
    line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    if line.strip() and not line.lstrip().startswith("#")
]


def instructions(name: str) -> list[str]:
    """Arguments of every instruction NAME, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.+)$", joined, re.MULTILINE)]


def _pattern(glob: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def in_context(path: str) -> bool:
    """Docker's rule: the last pattern matching the path (or a parent directory) decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    included = True
    for raw in IGNORE:
        negated = raw.startswith("!")
        pattern = _pattern(raw.lstrip("!").strip("/"))
        if any(pattern.fullmatch(c) for c in candidates):
            included = negated
    return included


def top_level_packages() -> list[str]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted({p.rstrip("*").rstrip(".") for p in patterns})


def runtime_files() -> list[str]:
    files = []
    for package in top_level_packages():
        for path in (ROOT / package).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.append(path.relative_to(ROOT).as_posix())
    return files


def test_build_context_holds_every_runtime_file():
    missing = [f for f in runtime_files() if not in_context(f)]
    assert not missing, f"excluded by .dockerignore but needed at run time: {missing[:10]}"
    assert in_context("pyproject.toml") and in_context("constraints.txt")


@pytest.mark.parametrize("path", ["tests/conftest.py", ".venv/bin/python", "var/mail/x.eml", ".git/HEAD",
                                  "services/survey/__pycache__/app.cpython-311.pyc", ".env", "bench/results/x.json"])
def test_build_context_leaves_out_local_state(path):
    assert not in_context(path)


def test_every_package_is_copied_into_the_image_and_importable():
    copied = {args.split()[0] for args in instructions("COPY") if "--from" not in args}
    workdirs = instructions("WORKDIR")
    assert set(top_level_packages()) <= copied
    assert "PYTHONPATH=/app" in " ".join(instructions("ENV")) and "/app" in workdirs


def test_base_image_is_pinned():
    (default,) = [a.split("=", 1)[1] for a in instructions("ARG") if a.startswith("PYTHON_IMAGE=")]
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", default), default
    assert all(line.split()[0] == "${PYTHON_IMAGE}" for line in instructions("FROM"))


def dockerfile_uid() -> int:
    user = instructions("USER")[-1]
    assert user.split(":")[0].isdigit(), "a numeric USER lets Kubernetes verify runAsNonRoot"
    return int(user.split(":")[0])


def test_image_runs_as_the_unprivileged_user_compose_and_kubernetes_expect():
    uid = dockerfile_uid()
    assert uid != 0
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
    for name in SERVICES:
        assert int(str(compose["services"][name]["user"]).split(":")[0]) == uid
    for obj in build(ROOT / "deploy/k8s/base"):
        if obj["kind"] == "Deployment":
            assert obj["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


def test_entrypoint_is_the_keymoment_command_and_every_port_is_exposed():
    assert instructions("ENTRYPOINT")[-1] == '["python", "-m", "keymoment"]'
    assert (ROOT / "keymoment" / "__main__.py").is_file()
    exposed = {int(p) for args in instructions("EXPOSE") for p in args.split()}
    assert {default_port(name) for name in SERVICES} <= exposed
