"""asyncpg pool and a forward-only migration runner.

Each service owns one schema. Its migrations are numbered SQL files
(``NNNN_verb_noun.sql``) applied in order, each in its own transaction,
recorded in ``<schema>.schema_migrations``; a PostgreSQL advisory lock makes
concurrent starts of several replicas safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg

logger = logging.getLogger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class MigrationError(RuntimeError):
    pass


def _quote_schema(schema: str) -> str:
    if not _SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}")
    return f'"{schema}"'


def advisory_key(name: str) -> int:
    """A stable 63-bit advisory-lock key for a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


_PARAMETER = re.compile(r"\$(\d+)")


class Statement:
    """Several writes sent as one statement, one round trip: each a data-modifying CTE written
    with its own ``$1``..``$n`` (renumbered here), plus what the statement selects from them.

    PostgreSQL runs every CTE to completion once, whether or not the ``SELECT`` reads it, all
    on the same snapshot: a CTE does not see the rows another one writes, and a row may be
    written by one of them only. Foreign keys are checked when the statement ends, so a CTE
    may insert rows referencing those another one inserts."""

    def __init__(self) -> None:
        self._ctes: list[str] = []
        self._selects: list[str] = []
        self.args: list[object] = []

    def _take(self, sql: str, args: Sequence[object]) -> str:
        offset = len(self.args)
        used = {int(n) for n in _PARAMETER.findall(sql)}
        if used != set(range(1, len(args) + 1)):  # an argument no $n names has no type to be sent as
            raise ValueError(f"parameters {sorted(used)} of {sql[:60]!r}... do not match its {len(args)} arguments")
        self.args.extend(args)
        return _PARAMETER.sub(lambda m: f"${int(m.group(1)) + offset}", sql)

    def cte(self, name: str, sql: str, *args: object) -> None:
        self._ctes.append(f"{name} AS ({self._take(sql, args)})")

    def select(self, expression: str, *args: object) -> None:
        self._selects.append(self._take(expression, args))

    def __bool__(self) -> bool:
        return bool(self._ctes)

    @property
    def sql(self) -> str:
        return "WITH " + ",\n".join(self._ctes) + "\nSELECT " + (", ".join(self._selects) or "NULL")

    async def run(self, conn: asyncpg.Connection) -> asyncpg.Record | None:
        """Send it (nothing when no write was added); the row of what it selects."""
        return await conn.fetchrow(self.sql, *self.args) if self else None


class SessionConnection(asyncpg.Connection):
    """A pooled connection that knows whether its session holds server-side state: a ``LISTEN``
    (:meth:`add_listener`) or a session-level advisory lock (taken after
    :meth:`mark_session_state`). Only such a session gets PostgreSQL's reset when it goes back to
    the pool; any other has nothing to reset (asyncpg has ended its transaction), so its release
    costs no round trip — on every request's critical path otherwise. Never ``SET`` a setting for
    the session on a pooled connection (``SET LOCAL`` in a transaction instead)."""

    _session_state = False

    def mark_session_state(self) -> None:
        """Call before taking a session-level advisory lock (or any other state that outlives a
        transaction): the connection is then reset in full when released."""
        self._session_state = True

    async def add_listener(self, channel, callback):  # type: ignore[no-untyped-def]
        self._session_state = True
        await super().add_listener(channel, callback)


async def _reset_session(conn: asyncpg.Connection) -> None:
    """The pool's reset, after asyncpg's own (open transaction rolled back, listener callbacks
    dropped): the server-side reset only for a session marked as holding state."""
    if getattr(conn, "_session_state", True):  # not ours: assume the worst
        await conn.execute(conn.get_reset_query())
        if isinstance(conn, SessionConnection):
            conn._session_state = False


async def create_pool(dsn: str, *, schema: str, min_size: int = 2, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose connections use the service's schema (and ``public``) by default."""
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        server_settings={"search_path": f"{_quote_schema(schema)},public", "application_name": schema},
        command_timeout=30,
        connection_class=SessionConnection,
        reset=_reset_session,
    )


async def wait_for_database(dsn: str, *, timeout: float = 30.0) -> None:
    """Bounded retry until the database accepts connections (pre-start step)."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.1
    while True:
        try:
            conn = await asyncpg.connect(dsn, timeout=5)
        except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
            if asyncio.get_running_loop().time() + delay > deadline:
                raise MigrationError(f"database not reachable after {timeout:.0f}s: {exc}") from exc
            logger.info("waiting for database", extra={"error": str(exc)})
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
        else:
            await conn.close()
            return


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def load_migrations(directory: Path) -> list[Migration]:
    migrations = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_NAME.match(path.name)
        if not match:
            raise MigrationError(f"migration file name must look like 0001_create_things.sql: {path.name}")
        migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration numbers in {directory}")
    return migrations


PLUMBING_MIGRATIONS = Path(__file__).parent / "migrations"


def _components(directory: Path, extra: Sequence[tuple[str, Path]]) -> dict[str, list[Migration]]:
    """Every component's migrations in the order they apply: plumbing, the opt-in ones, the service's."""
    reserved = {"plumbing", "service"}
    names = [name for name, _ in extra]
    if reserved & set(names) or len(set(names)) != len(names):
        raise MigrationError(f"component names must be unique and not {sorted(reserved)}: {names}")
    return {
        "plumbing": load_migrations(PLUMBING_MIGRATIONS),
        **{name: load_migrations(path) for name, path in extra},
        "service": load_migrations(directory),
    }


async def migrate(
    conn: asyncpg.Connection, *, schema: str, directory: Path, components: Sequence[tuple[str, Path]] = ()
) -> list[str]:
    """Apply pending migrations to ``schema``: first the shared plumbing tables
    (outbox, processed events), then the opt-in shared ``components`` the service
    asked for (``(name, directory)``, e.g. the mail queue), then the service's own
    ``directory``. A service migration may therefore use a component's tables.

    Returns the migrations applied, as ``component/version``.
    """
    quoted = _quote_schema(schema)
    components = _components(directory, components)
    key = advisory_key(f"migrate:{schema}")
    if hasattr(conn, "mark_session_state"):  # a pooled connection: reset in full when released
        conn.mark_session_state()
    await conn.execute("SELECT pg_advisory_lock($1)", key)
    try:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        await conn.execute(
            f"""CREATE TABLE IF NOT EXISTS {quoted}.schema_migrations (
                    component text NOT NULL,
                    version integer NOT NULL,
                    name text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now(),
                    PRIMARY KEY (component, version))"""
        )
        rows = await conn.fetch(f"SELECT component, version FROM {quoted}.schema_migrations")
        applied = {(r["component"], r["version"]) for r in rows}
        known = {(c, m.version) for c, ms in components.items() for m in ms}
        if unknown := applied - known:
            raise MigrationError(
                f"schema {schema} has migrations this code does not know: {sorted(unknown)} "
                "(the code is older than the database)"
            )
        done = []
        for component, migrations in components.items():
            for migration in migrations:
                if (component, migration.version) in applied:
                    continue
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL search_path TO {quoted}, public")
                    await conn.execute(migration.sql)
                    await conn.execute(
                        f"INSERT INTO {quoted}.schema_migrations (component, version, name) VALUES ($1, $2, $3)",
                        component,
                        migration.version,
                        migration.name,
                    )
                logger.info(
                    "applied migration",
                    extra={"schema": schema, "component": component, "version": migration.version, "migration": migration.name},
                )
                done.append(f"{component}/{migration.version:04d}")
        return done
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", key)


async def pending_migrations(
    conn: asyncpg.Connection, *, schema: str, directory: Path, components: Sequence[tuple[str, Path]] = ()
) -> list[str]:
    """Migrations of this code not yet applied to ``schema`` (``component/version``). A database
    newer than the code is not an error here: forward-only migrations keep the previous release
    working on the new schema, which is what a rollback runs on."""
    quoted = _quote_schema(schema)
    components = _components(directory, components)
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{quoted}.schema_migrations")
    applied = set()
    if exists:
        rows = await conn.fetch(f"SELECT component, version FROM {quoted}.schema_migrations")
        applied = {(r["component"], r["version"]) for r in rows}
    return [f"{c}/{m.version:04d}" for c, ms in components.items() for m in ms if (c, m.version) not in applied]


async def wait_for_migrations(
    conn: asyncpg.Connection, *, schema: str, directory: Path, components: Sequence[tuple[str, Path]] = (),
    timeout: float = 90.0,
) -> None:
    """Bounded wait until the migration step (``keymoment migrate SERVICE``) has brought
    ``schema`` up to this code; raises :class:`MigrationError` naming what is missing."""
    deadline = asyncio.get_running_loop().time() + timeout
    delay = 0.5
    while pending := await pending_migrations(conn, schema=schema, directory=directory, components=components):
        if asyncio.get_running_loop().time() + delay > deadline:
            raise MigrationError(
                f"schema {schema} lacks migrations {pending} after {timeout:.0f}s; MIGRATE_ON_START is off, so the "
                "migration step (`keymoment migrate SERVICE`, the migration Job) must run first"
            )
        logger.info("waiting for migrations", extra={"schema": schema, "pending": pending})
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def in_batches(pool: asyncpg.Pool, step: Callable[[asyncpg.Connection], Awaitable[int]]) -> int:
    """Run ``step`` in a transaction of its own again and again until it handles nothing; how many
    it handled in all. For work done in bounded batches at start (an upgrade's backlog) that
    replicas share: a step takes its rows with ``FOR UPDATE SKIP LOCKED``."""
    done = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            handled = await step(conn)
        if not handled:
            return done
        done += handled


async def migrate_dsn(
    dsn: str, *, schema: str, directory: Path, components: Sequence[tuple[str, Path]] = ()
) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        return await migrate(conn, schema=schema, directory=directory, components=components)
    finally:
        await conn.close()
