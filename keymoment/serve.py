"""``keymoment serve SERVICE`` and ``keymoment migrate SERVICE``."""

from __future__ import annotations

import argparse
import asyncio
import importlib
from pathlib import Path

SERVICES = ("intake", "survey", "alerts", "reporting")
# The only secret the migration step needs: the Job running it is given no other.
MIGRATION_SECRETS = ("database_url",)


def _service(name: str):
    app_module = importlib.import_module(f"services.{name}.app")
    settings_module = importlib.import_module(f"services.{name}.settings")
    settings_cls = next(  # the class the module defines, not a fragment it imports (MailSettings)
        v for k, v in vars(settings_module).items()
        if k.endswith("Settings") and isinstance(v, type) and v.__module__ == settings_module.__name__
    )
    return app_module, settings_cls


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keymoment serve", description="Run one Keymoment service.")
    parser.add_argument("service", choices=SERVICES)
    args = parser.parse_args(argv)
    from shared.runtime import serve

    app_module, settings_cls = _service(args.service)
    serve(app_module.create_app, settings_cls())
    return 0


def migration_settings(settings_cls: type) -> type:
    """The service's settings class as ``keymoment migrate`` reads it: the same fields and
    validation, but only :data:`MIGRATION_SECRETS` are required."""
    return type(settings_cls.__name__, (settings_cls,), {"required_secrets": MIGRATION_SECRETS, "__module__": __name__})


def migrate_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keymoment migrate", description="Apply a service's migrations.")
    parser.add_argument("service", choices=SERVICES)
    args = parser.parse_args(argv)
    from shared.db import migrate_dsn, wait_for_database

    app_module, settings_cls = _service(args.service)
    settings = migration_settings(settings_cls)()

    async def run() -> list[str]:
        await wait_for_database(settings.dsn())
        return await migrate_dsn(
            settings.dsn(), schema=settings.schema, directory=Path(app_module.__file__).parent / "migrations",
            components=settings.migration_components(),
        )

    applied = asyncio.run(run())
    print(f"{args.service}: applied {', '.join(applied) if applied else 'nothing (up to date)'}")
    return 0
