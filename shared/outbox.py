"""Transactional outbox: record a state change and its event in one transaction.

``enqueue`` inserts the event into the service's ``outbox`` table using the
caller's connection (inside the caller's transaction) and notifies the relay.
:class:`OutboxRelay` publishes rows in id order and deletes them once Kafka
acknowledged them. One relay per schema is active at a time (advisory lock),
so events leave in the order they were written; a crash between publish and
delete republishes, which idempotent consumers absorb.

A row that can never be published (Kafka refuses that message for good, or the
row cannot be read back as a message) does not hold up the rows behind it: the
relay bisects a refused batch down to the row, moves it to
``outbox_dead_letters`` with the error (``keymoment dlq outbox`` shows and
replays them) and carries on. Failures are judged by
:func:`shared.errors.classify`: while Kafka is away nothing is moved aside.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING

import asyncpg

from shared.db import advisory_key
from shared.errors import PERMANENT, TRANSIENT, NotDurable, PermanentError, PublishUnavailable, classify
from shared.events import Envelope
from shared.retry import Backoff, retry_forever

if TYPE_CHECKING:  # the relay takes the runtime's publisher; importing the outbox loads no Kafka client
    from shared.kafka import Publisher, RawMessage

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "keymoment_outbox"
"""The relay's wake-up channel: ``pg_notify`` it after writing outbox rows."""

DurablePublish = Callable[[list[tuple[str, Envelope]]], Awaitable[str]]
"""Makes ``(topic, event)`` pairs durable, returning ``"kafka"`` or ``"outbox"`` (or raising
:class:`NotDurable`): what :meth:`shared.runtime.ServiceRuntime.publish_durably` does for
service code, which never holds the Kafka client itself."""


def outbox_row(topic: str, event: Envelope) -> tuple[str, bytes | None, str, bytes]:
    """The values of one ``outbox (topic, key, headers, value)`` row, ``headers`` as jsonb text."""
    return topic, event.key_bytes(), json.dumps([[k, v.decode()] for k, v in event.headers()]), event.value()


def outbox_columns(events: Iterable[tuple[str, Envelope]]) -> list[list]:
    """``(topic, event)`` pairs as the four array parameters of :func:`insert_sql` (topics, keys,
    headers, values), in order."""
    rows = [outbox_row(topic, ev) for topic, ev in events]
    return [list(column) for column in zip(*rows)] if rows else [[], [], [], []]


def insert_sql(first: int, *, where: str = "") -> str:
    """An ``INSERT`` of outbox rows from the four array parameters ``$first`` .. ``$first + 3``
    (:func:`outbox_columns`), in their order: the one way events are written to the outbox, by
    :func:`enqueue` or as a CTE of a caller's own statement (``where``: a condition the rows are
    written under, e.g. ``EXISTS (SELECT FROM stored)``: only with the row they announce). Such a
    statement must also select :data:`NOTIFY_SQL`."""
    a, b, c, d = (f"${first + i}" for i in range(4))
    return (f"INSERT INTO outbox (topic, key, headers, value) "
            f"SELECT t, k, h, v FROM unnest({a}::text[], {b}::bytea[], {c}::jsonb[], {d}::bytea[]) "
            f"WITH ORDINALITY AS e(t, k, h, v, n) {'WHERE ' + where if where else ''} ORDER BY n")


NOTIFY_SQL = f"pg_notify('{NOTIFY_CHANNEL}', '')"
"""Wakes the relay at commit; a statement writing outbox rows selects it."""


async def enqueue(conn: asyncpg.Connection, events: Iterable[tuple[str, Envelope]]) -> int:
    """Add ``(topic, envelope)`` pairs to the outbox within the caller's transaction (one statement,
    one round trip, the relay notified)."""
    columns = outbox_columns(events)
    if not columns[0]:
        return 0
    await conn.execute(f"WITH added AS ({insert_sql(1)}) SELECT {NOTIFY_SQL}", *columns)
    return len(columns[0])


class OutboxRelay:
    """Publishes a schema's outbox to Kafka; run :meth:`run` as a background task."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        publisher: Publisher,
        *,
        schema: str,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        max_backoff: float = 5.0,
        unexpected_error_attempts: int = 5,
    ) -> None:
        self._pool = pool
        self._publisher = publisher
        self._lock_key = advisory_key(f"outbox:{schema}")
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._max_backoff = max_backoff
        self._wake = asyncio.Event()
        self.published_total = 0
        self.dead_lettered_total = 0
        self.last_error: str | None = None
        self._unexpected_attempts = unexpected_error_attempts
        self._failures: dict[int, int] = {}  # outbox row id -> unexpected failures of it alone
        # Ordering: while this process has events in the outbox, new events must
        # queue behind them (see publish_durably), not overtake them on Kafka.
        self._unrelayed = False  # an outbox write of this process committed and not yet seen drained
        self._writers = 0
        self._generation = 0

    @property
    def backlog(self) -> bool:
        """True while events this process wrote to the outbox may still be unpublished."""
        return self._unrelayed or self._writers > 0

    def writing(self) -> _OutboxWrite:
        """Context manager around an outbox write made outside :meth:`run`'s loop."""
        return _OutboxWrite(self)

    def _maybe_drained(self, generation: int, rows_seen: int) -> None:
        if rows_seen == 0 and self._writers == 0 and generation == self._generation:
            if self._unrelayed:
                logger.info("outbox drained; publishing directly again")
            self._unrelayed = False

    def wake(self) -> None:
        self._wake.set()

    async def pending(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM outbox")

    async def run(self) -> None:
        """Relay until cancelled; while the broker or the database is down, back off and
        retry (never give up)."""
        backoff = Backoff(initial=0.2, maximum=self._max_backoff)
        await retry_forever(
            partial(self._relay_forever, backoff), what="outbox relay", backoff=backoff,
            on_error=self._failed, logger=logger,
        )

    def _failed(self, exc: BaseException) -> None:
        self.last_error = str(exc)

    async def _relay_forever(self, backoff: Backoff) -> None:
        while True:
            async with self._pool.acquire() as conn:
                conn.mark_session_state()  # a session lock: the pool resets this connection in full
                if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self._lock_key):
                    if self.backlog:  # another replica relays our rows: watch for the outbox to drain
                        generation = self._generation
                        self._maybe_drained(generation, await conn.fetchval("SELECT count(*) FROM outbox"))
                    await asyncio.sleep(self._poll_interval)  # another replica relays
                    continue
                await conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                try:
                    await self._relay(conn, backoff)
                finally:
                    await conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
                    await conn.execute("SELECT pg_advisory_unlock($1)", self._lock_key)

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    async def _relay(self, conn: asyncpg.Connection, backoff: Backoff) -> None:
        while True:
            self._wake.clear()
            generation = self._generation
            rows = await conn.fetch(
                "SELECT id, topic, key, headers, value FROM outbox ORDER BY id LIMIT $1", self._batch_size
            )
            if rows:
                await self._publish(conn, rows)
                self.last_error = None
                backoff.reset()
                if len(rows) == self._batch_size:
                    continue
            else:
                self._maybe_drained(generation, 0)
            try:
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
            except TimeoutError:
                pass

    async def _publish(self, conn: asyncpg.Connection, rows: list[asyncpg.Record]) -> None:
        """Publish ``rows`` (id order) and delete them; a refused batch is bisected down to the row Kafka
        refuses, which is moved aside. A transient failure propagates (the rows stay; the relay backs off)."""
        readable: list[tuple[asyncpg.Record, RawMessage]] = []
        for row in rows:
            try:
                readable.append((row, _message(row)))
            except Exception as exc:  # a row that is not a message can never become one
                await self._move_aside(conn, row, exc, PERMANENT)
        await self._publish_chunks(conn, [readable] if readable else [])

    async def _publish_chunks(self, conn: asyncpg.Connection, pending: list) -> None:
        while pending:
            chunk = pending.pop()
            try:
                await self._publisher.send_raw_batch([message for _, message in chunk])
            except Exception as exc:
                kind = classify(exc)
                if kind == TRANSIENT:
                    raise
                if len(chunk) > 1:
                    middle = len(chunk) // 2
                    pending += [chunk[middle:], chunk[:middle]]  # the left half is popped first
                    continue
                row = chunk[0][0]
                if kind != PERMANENT:
                    self._failures[row["id"]] = failures = self._failures.get(row["id"], 0) + 1
                    if failures < self._unexpected_attempts:
                        raise  # tried again after the relay's backoff
                await self._move_aside(conn, row, exc, kind)
                continue
            ids = [row["id"] for row, _ in chunk]
            await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
            self.published_total += len(ids)
            for row_id in ids:
                self._failures.pop(row_id, None)

    async def _move_aside(self, conn: asyncpg.Connection, row: asyncpg.Record, exc: BaseException, kind: str) -> None:
        async with conn.transaction():
            await conn.execute(
                """INSERT INTO outbox_dead_letters (id, topic, key, headers, value, created_at, reason, error)
                   SELECT id, topic, key, headers, value, created_at, $2, $3 FROM outbox WHERE id = $1
                   ON CONFLICT (id) DO NOTHING""",
                row["id"], "permanent" if kind == PERMANENT else "unexpected", f"{type(exc).__name__}: {exc}"[:2000],
            )
            await conn.execute("DELETE FROM outbox WHERE id = $1", row["id"])
        self._failures.pop(row["id"], None)
        self.dead_lettered_total += 1
        logger.error("outbox row moved aside: it cannot be published", extra={
            "outbox_id": row["id"], "topic": row["topic"], "error": type(exc).__name__})

    async def dead_letters(self) -> int:
        return await self._pool.fetchval("SELECT count(*) FROM outbox_dead_letters")


def _message(row: asyncpg.Record) -> RawMessage:
    """The Kafka message of an outbox row."""
    headers = [(str(k), str(v).encode()) for k, v in json.loads(row["headers"])]
    return row["topic"], row["key"], headers, row["value"]


class _OutboxWrite:
    def __init__(self, relay: OutboxRelay) -> None:
        self._relay = relay

    def __enter__(self) -> None:
        self._relay._writers += 1

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self._relay._writers -= 1
        self._relay._generation += 1
        if exc_type is None:
            self._relay._unrelayed = True
            self._relay.wake()


async def publish_durably(
    publisher: Publisher,
    pool: asyncpg.Pool,
    events: list[tuple[str, Envelope]],
    *,
    relay: OutboxRelay | None = None,
    acquire_timeout: float = 3.0,
) -> str:
    """Make events durable: acknowledged by Kafka (``acks=all``) or, when Kafka
    is unavailable, committed to the outbox for the relay to publish later.

    With ``relay`` (the process's relay), events keep their order per key across
    an outage: while the outbox still holds events written by this process, new
    ones go to the outbox too instead of overtaking them on Kafka.

    Returns ``"kafka"`` or ``"outbox"``; raises :class:`NotDurable` when both failed.
    """
    if publisher.available and not (relay is not None and relay.backlog):
        try:
            await publisher.publish(events)
            return "kafka"
        except PublishUnavailable as exc:
            logger.warning("kafka unavailable; writing to outbox", extra={"events": len(events), "error": str(exc)})
        except PermanentError as exc:  # refused for good: the relay moves the refused one aside, visibly
            logger.error("kafka refused the events; writing to outbox", extra={"events": len(events),
                                                                                "error": type(exc).__name__})
    try:
        if relay is None:
            async with pool.acquire(timeout=acquire_timeout) as conn, conn.transaction():
                await enqueue(conn, events)
        else:
            with relay.writing():
                async with pool.acquire(timeout=acquire_timeout) as conn, conn.transaction():
                    await enqueue(conn, events)
    except Exception as exc:
        raise NotDurable(f"kafka and database both unavailable: {exc!r}") from exc
    return "outbox"
