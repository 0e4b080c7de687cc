"""``keymoment keys ...`` (and the channels' import command): one function per command."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from pydantic import ValidationError

from shared.cli import credential
from shared.contracts import Channel

MIGRATIONS = Path(__file__).parent / "migrations"


def _keys_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keymoment keys",
        description="Manage intake API keys (one per source). Reads DATABASE_URL (and DATABASE_SCHEMA) like the service.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    create = sub.add_parser("create", help="create a key and print it (shown only this once)")
    create.add_argument("name", help='the source, e.g. "kiosk-store-12" or "website-contact-form"')
    create.add_argument("--channel", action="append", choices=[c.value for c in Channel], default=[],
                        help="a channel the key may submit (repeat for several)")
    create.add_argument("--all-channels", action="store_true", help="allow every channel")
    create.add_argument("--origin", action="append", default=[],
                        help="a browser origin allowed to use the key, e.g. https://www.example.com "
                             "(repeat; '*' for any). Without it the key cannot be used from a browser.")
    create.add_argument("--rate", type=float, default=10.0, help="sustained requests (feedback) per second (default 10)")
    create.add_argument("--burst", type=int, default=None, help="bucket size (default: 5 x rate, at least 1)")
    create.add_argument("--unlimited", action="store_true", help="no rate limit (trusted server-side sources)")
    listing = sub.add_parser("list", help="list keys (never the secrets)")
    listing.add_argument("--all", action="store_true", help="include revoked keys")
    revoke = sub.add_parser("revoke", help="revoke a key by id or name; running intakes stop accepting it at once")
    revoke.add_argument("key", help="key id (the part after km_) or name")
    return parser


async def _connect():
    import asyncpg
    from pydantic import SecretStr
    from pydantic_settings import BaseSettings, SettingsConfigDict

    from services.intake.settings import IntakeSettings
    from shared.db import create_pool, migrate

    class CliSettings(BaseSettings):  # only what the command needs (no service secrets)
        model_config = SettingsConfigDict(extra="ignore", case_sensitive=False)
        database_url: SecretStr
        database_schema: str = "intake"

    settings = CliSettings()
    dsn = settings.database_url.get_secret_value()
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn, schema=settings.database_schema, directory=MIGRATIONS,
                      components=IntakeSettings.migration_components())
    finally:
        await conn.close()
    return await create_pool(dsn, schema=settings.database_schema, min_size=1, max_size=1)


async def _keys(args: argparse.Namespace) -> int:
    from services.intake import repository
    from services.intake.keys import ANY, hash_key, new_key

    pool = await _connect()
    try:
        if args.command == "create":
            if not args.channel and not args.all_channels:
                print("keymoment keys create: give --channel (repeatable) or --all-channels", file=sys.stderr)
                return 2
            if args.rate <= 0 or (args.burst is not None and args.burst < 1):
                print("keymoment keys create: --rate must be > 0 and --burst >= 1", file=sys.stderr)
                return 2
            key_id, key = new_key()
            channels = [ANY] if args.all_channels else sorted(set(args.channel))
            rate = None if args.unlimited else args.rate
            burst = None if args.unlimited else (args.burst or max(1, round(args.rate * 5)))
            try:
                await repository.insert_key(
                    pool, key_id=key_id, name=args.name, secret_sha256=hash_key(key), channels=channels,
                    origins=sorted(set(args.origin)), rate_per_second=rate, burst=burst,
                )
            except repository.DuplicateKeyName:
                print(f"keymoment keys create: an active key named {args.name!r} exists; revoke it first",
                      file=sys.stderr)
                return 1
            print(key)
            print(f"created key {key_id} for {args.name!r}: channels {','.join(channels)}; "
                  f"origins {','.join(sorted(set(args.origin))) or '(none: server-side only)'}; "
                  f"rate {'unlimited' if rate is None else f'{rate:g}/s burst {burst}'}. "
                  "Store the key now: it is not shown again.", file=sys.stderr)
            return 0
        if args.command == "list":
            rows = await repository.all_keys(pool, include_revoked=args.all)
            header = ("ID", "NAME", "CHANNELS", "ORIGINS", "RATE", "CREATED", "REVOKED")
            table = [header] + [
                (r.id, r.name, ",".join(r.channels), ",".join(r.origins) or "-",
                 "unlimited" if r.rate_per_second is None else f"{r.rate_per_second:g}/s burst {r.burst}",
                 r.created_at.strftime("%Y-%m-%d %H:%M"), r.revoked_at.strftime("%Y-%m-%d %H:%M") if r.revoked_at else "-")
                for r in rows
            ]
            widths = [max(len(row[i]) for row in table) for i in range(len(header))]
            for row in table:
                print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
            return 0
        revoked = await repository.revoke_key(pool, args.key)
        if not revoked:
            print(f"keymoment keys revoke: no active key with id or name {args.key!r}", file=sys.stderr)
            return 1
        print(f"revoked {', '.join(revoked)}")
        return 0
    finally:
        await pool.close()


def keys_main(argv: list[str]) -> int:
    """``keymoment keys create|list|revoke``."""
    args = _keys_parser().parse_args(argv)
    try:
        return asyncio.run(_keys(args))
    except ValidationError:
        print("keymoment keys: set DATABASE_URL (the database intake uses)", file=sys.stderr)
        return 2


# --- keymoment import suggestion-box FILE.csv ----------------------------------------------

def _import_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keymoment import",
        description="Import feedback files into a running intake. The file is sent as is; intake detects the "
        "encoding (UTF-8, UTF-8 with BOM, GBK), checks every row and reports accepted and rejected rows. "
        "Importing the same cards again creates no duplicates.",
    )
    sub = parser.add_subparsers(dest="kind", required=True)
    box = sub.add_parser("suggestion-box", help="transcribed suggestion-box cards (CSV; columns in services/intake/README.md)")
    box.add_argument("file", type=Path, help="the CSV file")
    box.add_argument("--url", default=None, help="intake's base URL (default: $KEYMOMENT_INTAKE_URL or http://127.0.0.1:8001)")
    box.add_argument("--api-key", default=None,
                     help="a key allowed channel suggestion_box (default: $KEYMOMENT_API_KEY, else ./var/dev-api-key)")
    box.add_argument("--timezone", default="UTC", help="IANA zone of dates written without offset, e.g. Asia/Shanghai")
    box.add_argument("--default-scale", default="stars", choices=["mot", "csat", "nps", "stars"],
                     help="scale of ratings when the file has no scale column (default stars 1..5)")
    box.add_argument("--json", action="store_true", help="print intake's full JSON report")
    return parser




def import_main(argv: list[str]) -> int:
    """``keymoment import suggestion-box FILE.csv [--url URL] [--api-key KEY]``: exit 0 when every row
    was accepted, 1 when some rows were rejected or the import failed, 2 on usage errors."""
    import json
    import os

    import httpx

    args = _import_parser().parse_args(argv)
    url = (args.url or os.environ.get("KEYMOMENT_INTAKE_URL") or "http://127.0.0.1:8001").rstrip("/")
    key = credential(args.api_key, env="KEYMOMENT_API_KEY", dev_file="dev-api-key")
    if not key:
        print("keymoment import: no API key (use --api-key, KEYMOMENT_API_KEY or run `make dev` for ./var/dev-api-key)",
              file=sys.stderr)
        return 2
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        print(f"keymoment import: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        response = httpx.post(
            f"{url}/v1/suggestion-box/import",
            params={"timezone": args.timezone, "default_scale": args.default_scale},
            files={"file": (args.file.name, data, "text/csv")},
            headers={"X-API-Key": key},
            timeout=120,
        )
    except httpx.HTTPError as exc:
        print(f"keymoment import: intake at {url} is not reachable: {exc}", file=sys.stderr)
        return 1
    try:
        body = response.json()
    except ValueError:
        body = {"detail": response.text[:500]}
    if response.status_code != 200:
        print(f"keymoment import: intake answered {response.status_code}: {body.get('detail', body)}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(body, ensure_ascii=False, indent=2))
    else:
        print(f"{args.file}: read as {body['encoding']}, {body['rows']} rows, "
              f"{len(body['accepted'])} accepted, {len(body['rejected'])} rejected")
        for row in body["accepted"]:
            print(f"  line {row['line']}: accepted {row['id']}")
        for row in body["rejected"]:
            print(f"  line {row['line']}: REJECTED {'; '.join(row['errors'])}")
        if body["ignored_columns"]:
            print(f"  ignored columns (not recognised): {', '.join(body['ignored_columns'])}")
    return 1 if body["rejected"] else 0
