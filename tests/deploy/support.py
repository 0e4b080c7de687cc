"""What the deployment tests need to know about the services and about
docker-compose's variable syntax, read from the code rather than copied.

Settings classes keep growing, so everything here introspects them: a field
name is the environment variable (case-insensitive), ``required_secrets``
lists the secrets production refuses to start without.
"""

from __future__ import annotations

import importlib
import re
import secrets
import typing
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from keymoment.serve import SERVICES  # noqa: F401 - the services `keymoment serve` knows
from shared.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ("kafka", "postgres", "prometheus", "grafana", "mailpit", "migrate")


@cache
def settings_class(service: str) -> type[ServiceSettings]:
    module = importlib.import_module(f"services.{service}.settings")
    found = [
        value for value in vars(module).values()
        if isinstance(value, type) and issubclass(value, ServiceSettings) and value is not ServiceSettings
        and value.__module__ == module.__name__
    ]
    assert len(found) == 1, f"services.{service}.settings should define exactly one settings class, found {found}"
    assert found[0].service_name == service
    return found[0]


def env_names(service: str) -> set[str]:
    """The environment variables a service reads (upper case)."""
    names: set[str] = set()
    for name, field in settings_class(service).model_fields.items():
        names.add(name.upper())
        if isinstance(field.validation_alias, str):
            names.add(field.validation_alias.upper())
    return names


def default_port(service: str) -> int:
    return int(settings_class(service).model_fields["port"].default)


def listening_ports(service: str, env: dict[str, str]) -> set[int]:
    """Ports the service listens on with this environment: its HTTP port plus any
    ``<SERVICE>_..._PORT`` listener switched on (e.g. intake's SMTP listener)."""
    ports = {int(env.get("PORT") or default_port(service))}
    prefix = f"{service.upper()}_"
    for name, value in env.items():
        if name.startswith(prefix) and name.endswith("_PORT") and name in env_names(service) and str(value) not in ("", "0"):
            ports.add(int(value))
    return ports


def required_secrets(service: str) -> set[str]:
    return {name.upper() for name in settings_class(service).required_secrets}


def _mentions(annotation: Any, kind: type) -> bool:
    if annotation is kind:
        return True
    return any(_mentions(arg, kind) for arg in typing.get_args(annotation))


def secret_fields(service: str) -> set[str]:
    """Fields typed SecretStr: never in a ConfigMap or a literal in compose."""
    return {
        name.upper() for name, field in settings_class(service).model_fields.items()
        if _mentions(field.annotation, SecretStr)
    } | required_secrets(service)


def path_fields(service: str) -> set[str]:
    """Fields naming a file the container must be able to read."""
    return {
        name.upper() for name, field in settings_class(service).model_fields.items()
        if _mentions(field.annotation, Path)
    }


def build_settings(service: str, env: dict[str, Any]) -> ServiceSettings:
    """The service's settings from an environment, validated as at start-up."""
    return settings_class(service)(**{key.lower(): value for key, value in env.items()})


# --- docker-compose variable interpolation ------------------------------------------------

class MissingVariable(LookupError):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation: $$, $NAME, ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:?msg},
    ${NAME?msg}, ${NAME:+x}, ${NAME+x}, with nesting inside the default/message."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "$":
            out.append(char)
            i += 1
            continue
        if text.startswith("$$", i):
            out.append("$")
            i += 2
            continue
        if text.startswith("${", i):
            end = _closing_brace(text, i + 2)
            out.append(_expand(text[i + 2:end], env))
            i = end + 1
            continue
        match = _NAME.match(text, i + 1)
        if not match:
            raise ValueError(f"invalid interpolation at {text[i:]!r}")
        out.append(env.get(match.group(), ""))
        i = match.end()
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def _expand(body: str, env: dict[str, str]) -> str:
    match = _NAME.match(body)
    if not match:
        raise ValueError(f"invalid variable name in ${{{body}}}")
    name, rest = match.group(), body[match.end():]
    value = env.get(name)
    if rest == "":
        return value or ""
    for op in (":-", ":?", ":+", "-", "?", "+"):
        if rest.startswith(op):
            arg = rest[len(op):]
            unset_or_empty = not value if op.startswith(":") else value is None
            if op.endswith("-"):
                return interpolate(arg, env) if unset_or_empty else value
            if op.endswith("?"):
                if unset_or_empty:
                    raise MissingVariable(name, interpolate(arg, env))
                return value
            return "" if unset_or_empty else interpolate(arg, env)
    raise ValueError(f"invalid interpolation ${{{body}}}")


def interpolate_tree(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(item, env) for item in node]
    if isinstance(node, dict):
        return {key: interpolate_tree(value, env) for key, value in node.items()}
    return node


def required_variables(node: Any) -> set[str]:
    """Variables the file refuses to run without (${NAME:?...} / ${NAME?...})."""
    if isinstance(node, str):
        return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*):?\?", node))
    if isinstance(node, list):
        return set().union(*(required_variables(item) for item in node)) if node else set()
    if isinstance(node, dict):
        return set().union(*(required_variables(v) for v in node.values())) if node else set()
    return set()



# --- docker-compose.yml -------------------------------------------------------------------

def load_compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))


def operator_env(compose: dict) -> dict[str, str]:
    """What an operator exports before `docker compose up`: every required variable, strong values."""
    env = {name: secrets.token_hex(24) for name in required_variables(compose)}
    env["ALERTS_ROUTES"] = "./routes.yaml"
    return env


def environment(service: dict) -> dict[str, str]:
    """A compose service's environment as a dict of strings."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


# --- what the code does with secrets and topics --------------------------------------------

# Variables asyncpg reads itself when the DSN leaves user or password out (the CloudNativePG
# component's workloads log in with their role's Secret this way).
LIBPQ_ENV = {"PGUSER", "PGPASSWORD"}


@cache
def code_attributes(service: str) -> frozenset[str]:
    """Attribute names the code a service runs refers to (``x.admin_token``): the modules its
    app imports from this repository (services.<service>, shared), found by reading them."""
    import ast

    todo, seen, names = [f"services.{service}.app"], set(), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        path = ROOT / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = ROOT / module.replace(".", "/") / "__init__.py"
            if not path.is_file():
                continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                names.add(node.attr)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo += [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names]
        todo = [m for m in todo if m.split(".")[0] in ("shared", "services") and
                (not m.startswith("services.") or m.startswith(f"services.{service}"))]
    return frozenset(names)


def secrets_used(service: str) -> set[str]:
    """Secret settings (as variables) the service's code reads."""
    return {name for name in secret_fields(service) if name.lower() in code_attributes(service)}


@cache
def service_topics() -> dict[str, dict]:
    """Per service: topics it produces and consumes and its consumer group, from its app."""
    return load_generator().service_topics()


@cache
def load_generator():
    import importlib.util

    spec = importlib.util.spec_from_file_location("deploy_k8s_generate", ROOT / "deploy" / "k8s" / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    return generate
