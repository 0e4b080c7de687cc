"""Render the settings table of the README from the settings classes.

``python -m keymoment.settings_doc`` prints it, ``--write README.md`` updates
the README in place; a test keeps the README in
step with the code (field names are the environment variable names).
"""

from __future__ import annotations

import importlib

from pydantic import SecretStr
from pydantic_core import PydanticUndefined

SERVICES = ("intake", "survey", "alerts", "reporting")


def settings_classes() -> dict[str, type]:
    classes = {}
    for name in SERVICES:
        module = importlib.import_module(f"services.{name}.settings")
        classes[name] = next(  # the class the module defines, not a fragment it imports (MailSettings)
            v for k, v in vars(module).items()
            if k.endswith("Settings") and isinstance(v, type) and v.__module__ == module.__name__
        )
    return classes


def _default(cls: type, field: str) -> str:
    info = cls.model_fields[field]
    if info.annotation is SecretStr or "SecretStr" in str(info.annotation):
        dev = getattr(cls, "dev_secret_defaults", {})
        required = field in getattr(cls, "required_secrets", ())
        if required:
            return "required in production" + (" (dev: built-in)" if field in dev else "")
        return "unset"
    value = info.default
    if value is PydanticUndefined:
        return "required"
    if value is None:
        return "unset"
    if hasattr(value, "value"):
        value = value.value
    text = str(value)
    return f"`{text}`" if text else '`""`'


def render() -> str:
    from shared.settings import ServiceSettings

    classes = settings_classes()
    rows: dict[str, dict] = {}
    for service, cls in classes.items():
        for field, info in cls.model_fields.items():
            base = ServiceSettings.model_fields.get(field)
            description = (base.description if base is not None else info.description) or ""
            row = rows.setdefault(field, {"services": [], "defaults": {}, "description": description})
            row["services"].append(service)
            row["defaults"][service] = _default(cls, field)
    lines = ["| Variable | Services | Default | Meaning |", "|---|---|---|---|"]
    for field, row in sorted(rows.items(), key=lambda kv: (len(kv[1]["services"]) < len(SERVICES), kv[0])):
        services = "all" if len(row["services"]) == len(SERVICES) else ", ".join(row["services"])
        defaults = set(row["defaults"].values())
        default = defaults.pop() if len(defaults) == 1 else "; ".join(f"{s}: {d}" for s, d in row["defaults"].items())
        lines.append(f"| `{field.upper()}` | {services} | {default} | {row['description'].replace('|', '/')} |")
    return "\n".join(lines)


START, END = "<!-- settings:start -->", "<!-- settings:end -->"


def readme_table(readme: str) -> str:
    return readme.split(START, 1)[1].split(END, 1)[0].strip()


def write_readme(path: str) -> None:
    with open(path, encoding="utf-8") as f:
        text = f.read()
    before, rest = text.split(START, 1)
    after = rest.split(END, 1)[1]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{before}{START}\n{render()}\n{END}{after}")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        write_readme(sys.argv[2] if len(sys.argv) > 2 else "README.md")
    else:
        print(render())
