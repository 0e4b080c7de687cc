"""``keymoment scoring ...`` with what alerts adds to the scorer's commands: the managers'
verdicts stored in the alerts database as the trainer's labelled JSONL.

    keymoment scoring export-verdicts --out FILE.jsonl [--source NAME] [--industry NAME] [--since DATE]
    keymoment scoring train --from-database [--source NAME] [--industry NAME] [--since DATE]
                            --out MODEL.json.gz [--data MORE.jsonl ...] [--base ...] [--force]

Both read the database as the alerts service does (``DATABASE_URL``, ``DATABASE_SCHEMA``;
no other secret). ``export-verdicts`` writes the current verdict on every alerted feedback with
text, oldest first, in the format of ``services/alerts/scoring/verdicts.py``: ``correct`` is
``label: negative``, ``false_alarm`` is ``label: not_negative``. ``train --from-database``
exports them to a temporary file and runs ``keymoment scoring train`` with it as one more
``--data``. Every other command is the scorer's own (``services.alerts.scoring.cli``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported when a command runs: `keymoment scoring --help` loads no database driver
    import asyncpg

    from services.alerts.settings import AlertsSettings

MIGRATIONS = Path(__file__).parent / "migrations"
DEFAULT_SOURCE = "alerts-verdicts"

USAGE_EXTRA = """
  export-verdicts  write the managers' verdicts stored by alerts as labelled JSONL for `train`:
                   keymoment scoring export-verdicts --out verdicts.jsonl
  train --from-database
                   train on the stored verdicts (and any --data): exports them first"""


class ExportError(RuntimeError):
    """The verdicts cannot be read (a database behind the code, unreachable)."""


def _since(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO date or time (e.g. 2026-11-01)") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _selection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--source", default=DEFAULT_SOURCE,
                        help=f"the rows' source (each source weighs the same in training; default {DEFAULT_SOURCE})")
    parser.add_argument("--industry", help="the rows' industry (domain), e.g. hotel")
    parser.add_argument("--since", type=_since, help="only verdicts decided at or after this date/time (UTC)")


async def export_verdicts(settings: AlertsSettings, out: Path, *, source: str = DEFAULT_SOURCE,
                          industry: str | None = None, since: datetime | None = None) -> int:
    """Write the current verdicts (on feedback with text) of the alerts database ``settings``
    points at to ``out`` (replaced whole once written); returns how many rows."""
    import asyncpg

    from shared.db import create_pool

    try:
        pool = await create_pool(settings.dsn(), schema=settings.schema, min_size=1, max_size=1)
    except (OSError, asyncpg.PostgresError) as exc:
        raise ExportError(f"cannot connect to the alerts database: {exc}") from exc
    try:
        async with pool.acquire() as conn:
            return await _export(conn, settings, out, source=source, industry=industry, since=since)
    finally:
        await pool.close()


async def _export(conn: asyncpg.Connection, settings: AlertsSettings, out: Path, *, source: str,
                  industry: str | None, since: datetime | None) -> int:
    from services.alerts.repository import AlertsRepository
    from services.alerts.verdicts import training_row
    from shared.db import pending_migrations

    pending = await pending_migrations(conn, schema=settings.schema, directory=MIGRATIONS,
                                       components=settings.migration_components())
    if pending:
        raise ExportError(f"schema {settings.schema} lacks migrations {pending}: run `keymoment migrate alerts`")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    rows = 0
    try:
        async with conn.transaction(readonly=True, isolation="repeatable_read"):
            with partial.open("w", encoding="utf-8") as fh:
                async for verdict in AlertsRepository(conn).current_verdicts(since=since):
                    fh.write(json.dumps(training_row(verdict, source=source, industry=industry),
                                        ensure_ascii=False) + "\n")
                    rows += 1
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    return rows


def _settings() -> AlertsSettings:
    from keymoment.serve import migration_settings
    from services.alerts.settings import AlertsSettings

    return migration_settings(AlertsSettings)()  # DATABASE_URL is the one secret it needs


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="keymoment scoring export-verdicts",
                                     description="Write the managers' verdicts stored by alerts as labelled JSONL "
                                     "for `keymoment scoring train`. Reads DATABASE_URL (and DATABASE_SCHEMA).")
    parser.add_argument("--out", type=Path, required=True, help="the JSONL file to write")
    _selection(parser)
    args = parser.parse_args(argv)
    try:
        rows = asyncio.run(export_verdicts(_settings(), args.out, source=args.source, industry=args.industry,
                                           since=args.since))
    except (ExportError, ValueError) as exc:
        print(f"keymoment scoring export-verdicts: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {rows} verdict(s) to {args.out}", file=sys.stderr)
    return 0


def train_from_database(argv: list[str]) -> int:
    """``train --from-database ...``: the stored verdicts exported to a temporary file, then the
    scorer's ``train`` with it as one more ``--data``."""
    from services.alerts.scoring.retrain import main as train_main

    parser = argparse.ArgumentParser(prog="keymoment scoring train --from-database", add_help=False)
    parser.add_argument("--from-database", action="store_true", required=True)
    _selection(parser)
    args, rest = parser.parse_known_args(argv)
    with tempfile.TemporaryDirectory(prefix="keymoment-verdicts-") as tmp:
        data = Path(tmp) / f"{args.source}.jsonl"  # the model file's meta names it
        try:
            rows = asyncio.run(export_verdicts(_settings(), data, source=args.source, industry=args.industry,
                                               since=args.since))
        except (ExportError, ValueError) as exc:
            print(f"keymoment scoring train: {exc}", file=sys.stderr)
            return 2
        print(f"{rows} verdict(s) from the alerts database", file=sys.stderr)
        return train_main([*rest, "--data", os.fspath(data)])


def scoring_main(argv: list[str] | None = None) -> int:
    from services.alerts.scoring.cli import SCORING_USAGE
    from services.alerts.scoring.cli import scoring_main as scorer_main

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(SCORING_USAGE + USAGE_EXTRA)
        return 0
    if args[0] == "export-verdicts":
        return export_main(args[1:])
    if args[0] == "train" and "--from-database" in args[1:]:
        return train_from_database(args[1:])
    return scorer_main(args)
