"""Kafka plumbing: one publisher per process, topic creation, and a consumer
runner that processes batches inside one database transaction, dedupes by
event id, dead-letters what can never succeed and commits offsets only after
the database committed.

Delivery is at-least-once (the dev broker, Tansu, has no idempotent producer
or transactions); every consumer's effect is made exactly-once by the
``processed_events`` table written in the same transaction as the effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from pydantic import ValidationError

from shared.errors import PermanentError, PublishUnavailable, TransientError
from shared.events import Envelope, EnvelopeError, EventType, dlq_topic
from shared.metrics import ConsumerMetrics
from shared.retry import Backoff, retry_forever

logger = logging.getLogger(__name__)

RawMessage = tuple[str, bytes | None, list[tuple[str, bytes]], bytes]



_TRANSIENT = (
    PublishUnavailable,
    OSError,
    TimeoutError,
    asyncio.TimeoutError,
    KafkaError,
    TransientError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
)
_PERMANENT = (PermanentError, EnvelopeError, ValidationError, asyncpg.DataError)


def classify(exc: BaseException) -> str:
    """``transient`` (retry for ever, with capped backoff), ``permanent``
    (dead-letter now) or ``unknown`` (retry a few times, then dead-letter)."""
    if isinstance(exc, _PERMANENT):
        return "permanent"
    if isinstance(exc, _TRANSIENT):
        return "transient"
    return "unknown"


async def ensure_topics(
    bootstrap_servers: str, topics: Iterable[str], *, partitions: int = 3, replication_factor: int = 1,
    security: Mapping[str, Any] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet (idempotent); returns those created.
    ``security``: the clients' TLS/SASL options (:func:`shared.kafka_security.client_security`)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=10_000, **(security or {}))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = sorted(set(topics) - existing)
        if not missing:
            return []
        try:
            await admin.create_topics(
                [NewTopic(name=t, num_partitions=partitions, replication_factor=replication_factor) for t in missing]
            )
        except TopicAlreadyExistsError:
            pass  # a replica created them first
        return missing
    finally:
        await admin.close()


# A flush this large goes at once; a smaller one lingers (Publisher linger_ms) for more.
FLUSH_AT = 16

_partitioner = DefaultPartitioner()


@functools.lru_cache(maxsize=65_536)
def _keyed_partition(key: bytes, all_partitions: tuple[int, ...]) -> int:
    return _partitioner(key, list(all_partitions), None)


def _partition_of(key: bytes | None, all_partitions: list[int]) -> int:
    """The partition the producer's default partitioner picks (murmur2 of the key,
    as the Java client): the same key lands where ``producer.send`` would put it."""
    if key is None:
        return random.choice(all_partitions)
    return _keyed_partition(key, tuple(all_partitions))


class Publisher:
    """The process's one Kafka producer (``acks=all``).

    It reconnects in the background when the broker is unreachable at start,
    and after a failed send it reports itself unavailable for ``cooldown``
    seconds so that callers with a fallback (intake's outbox) don't each wait
    for a timeout while Kafka is down.
    """

    def __init__(
        self,
        bootstrap_servers: str,
        *,
        client_id: str,
        send_timeout: float = 5.0,
        cooldown: float = 2.0,
        linger_ms: int = 5,
        security: Mapping[str, Any] | None = None,
        trusted_sources: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        # Per event type, the CloudEvents sources accepted; an event from any other is a dead letter.
        self._trusted = dict(trusted_sources or {})
        self._security = dict(security or {})
        self._client_id = client_id
        self._send_timeout = send_timeout
        self._cooldown = cooldown
        self._linger_ms = linger_ms
        self._producer: AIOKafkaProducer | None = None
        self._connect_task: asyncio.Task | None = None
        self._unavailable_until = 0.0
        self.last_error: str | None = None
        # After a failure the broker may have come back empty (a restarted in-memory
        # broker such as Tansu acknowledges writes to topics it does not have and
        # drops them), so the topics of the next send are checked/created first.
        self._verify_topics = True
        self._topic_partitions = 3
        self._replication_factor = 1
        # callers waiting for the next flush, and the task flushing
        self._pending: list[tuple[Sequence[RawMessage], asyncio.Future]] = []
        self._flusher: asyncio.Task | None = None
        self._pending_count = 0
        self._full: asyncio.Future | None = None

    def configure(
        self,
        *,
        send_timeout: float | None = None,
        cooldown: float | None = None,
        topic_partitions: int | None = None,
        replication_factor: int | None = None,
    ) -> None:
        """Tune how long a send may wait for Kafka and how long to stay away after a failure.

        ``send_timeout`` bounds the time a caller waits while Kafka is down; it
        applies to sends from now on (the connection's request timeout to
        producers created after this call)."""
        if send_timeout is not None:
            self._send_timeout = send_timeout
        if cooldown is not None:
            self._cooldown = cooldown
        if topic_partitions is not None:
            self._topic_partitions = topic_partitions
        if replication_factor is not None:
            self._replication_factor = replication_factor

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=False,
            linger_ms=self._linger_ms,
            max_batch_size=1_048_576,
            request_timeout_ms=int(self._send_timeout * 1000),
            retry_backoff_ms=100,
            **self._security,
        )

    async def start(self, *, wait: bool = True) -> None:
        """Connect; with ``wait=False`` keep trying in the background instead of failing."""
        if wait:
            producer = self._new_producer()
            try:
                await producer.start()
            except BaseException:
                await producer.stop()  # a half-started producer holds a client and its connections
                raise
            self._producer = producer
        else:
            self._connect_task = asyncio.create_task(self._connect_forever(), name=f"{self._client_id}-connect")

    async def _connect_forever(self) -> None:
        self._producer = await retry_forever(
            self._connect, what="kafka producer connection", backoff=Backoff(initial=0.2, maximum=5.0),
            on_error=self._connect_failed, logger=logger,
        )
        logger.info("kafka producer connected", extra={"bootstrap": self._bootstrap})

    async def _connect(self) -> AIOKafkaProducer:
        producer = self._new_producer()
        try:
            await producer.start()
        except BaseException:
            await producer.stop()
            raise
        return producer

    def _connect_failed(self, exc: BaseException) -> None:
        self.last_error = f"kafka producer cannot connect: {exc}"

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            await asyncio.gather(self._connect_task, return_exceptions=True)
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    @property
    def connected(self) -> bool:
        return self._producer is not None

    @property
    def available(self) -> bool:
        return self._producer is not None and time.monotonic() >= self._unavailable_until

    async def check(self, timeout: float = 2.0) -> None:
        """Raise unless the broker answers a metadata request."""
        if self._producer is None:
            raise PublishUnavailable(self.last_error or "kafka producer not connected")
        await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout)

    async def send_raw_batch(self, messages: Sequence[RawMessage]) -> None:
        """Send messages and wait until Kafka acknowledged every one of them.

        Callers in the same event-loop turn share one flush: their messages go
        out as one record batch per partition (instead of one ``send`` each),
        and all of them learn the outcome together. A failed flush raises
        :class:`PublishUnavailable` in every caller of it; messages of other
        partitions in that flush may have been written (at-least-once: event
        ids make the retry harmless)."""
        if self._producer is None:
            raise PublishUnavailable(self.last_error or "kafka producer not connected")
        waiter = asyncio.get_running_loop().create_future()
        self._pending.append((messages, waiter))
        self._pending_count += len(messages)
        if self._full is not None and self._pending_count >= FLUSH_AT and not self._full.done():
            self._full.set_result(None)
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush_all(), name=f"{self._client_id}-flush")
        await waiter

    async def _flush_all(self) -> None:
        """Flush until nothing waits. One flush at a time: whoever arrives while
        one is in flight joins the next, so under load each flush carries more
        (a single broker connection sends one request at a time anyway). A flush
        of fewer than ``FLUSH_AT`` messages first waits up to ``linger_ms`` for
        company: at a steady trickle (1,000 requests/s one by one) that cut
        intake's CPU per request by a third, and under load it never waits."""
        try:
            linger = self._linger_ms / 1000
            loop = asyncio.get_running_loop()
            while self._pending:
                if linger and self._pending_count < FLUSH_AT:
                    self._full = full = loop.create_future()
                    timer = loop.call_later(linger, lambda: full.done() or full.set_result(None))
                    await full
                    timer.cancel()
                    self._full = None
                pending, self._pending = self._pending, []
                self._pending_count = 0
                if time.monotonic() < self._unavailable_until:  # the flush before failed: don't wait again
                    error = PublishUnavailable(self.last_error or "kafka unavailable")
                    for _, waiter in pending:
                        if not waiter.done():
                            waiter.set_exception(error)
                    continue
                await self._flush(pending)
        finally:
            self._flusher = None

    async def _flush(self, pending: list[tuple[Sequence[RawMessage], asyncio.Future]]) -> None:
        producer = self._producer
        try:
            if producer is None:
                raise PublishUnavailable(self.last_error or "kafka producer not connected")
            try:
                async with asyncio.timeout(self._send_timeout):
                    await self._produce(producer, [m for messages, _ in pending for m in messages])
            except (KafkaError, TimeoutError, OSError) as exc:
                self._unavailable_until = time.monotonic() + self._cooldown
                self._verify_topics = True
                self.last_error = f"kafka send failed: {exc!r}"
                raise PublishUnavailable(self.last_error) from exc
        except BaseException as exc:  # cancelled too: no caller may wait for ever
            for _, waiter in pending:
                if not waiter.done():
                    waiter.set_exception(exc if isinstance(exc, Exception) else PublishUnavailable(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        self._unavailable_until = 0.0
        for _, waiter in pending:
            if not waiter.done():
                waiter.set_result(None)

    async def _produce(self, producer: AIOKafkaProducer, messages: list[RawMessage]) -> None:
        if self._verify_topics:
            created = await ensure_topics(
                self._bootstrap, {m[0] for m in messages},
                partitions=self._topic_partitions, replication_factor=self._replication_factor,
                security=self._security,
            )
            if created:
                logger.warning("recreated missing topics before publishing", extra={"topics": created})
                await producer.client.force_metadata_update()
            self._verify_topics = False
        partitions: dict[str, list[int]] = {}
        builders: dict[tuple[str, int], BatchBuilder] = {}
        sent: list[asyncio.Future] = []
        for topic, key, headers, value in messages:
            if (all_partitions := partitions.get(topic)) is None:
                all_partitions = partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = _partition_of(key, all_partitions)
            builder = builders.get((topic, partition))
            if builder is None:
                builder = builders[(topic, partition)] = producer.create_batch()
            if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:  # full
                builder.close()
                sent.append(await producer.send_batch(builder, topic, partition=partition))
                builder = builders[(topic, partition)] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    raise KafkaError(f"a message of {len(value)} bytes does not fit in a record batch")
        for (topic, partition), builder in builders.items():
            builder.close()  # complete: no linger, the sender takes it at once
            sent.append(await producer.send_batch(builder, topic, partition=partition))
        await asyncio.gather(*sent)

    async def publish(self, events: Sequence[tuple[str, Envelope]]) -> None:
        """Publish ``(topic, envelope)`` pairs and wait for ``acks=all``."""
        await self.send_raw_batch([(t, e.key_bytes(), e.headers(), e.value()) for t, e in events])


Handler = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]
# Takes every new event of its type in a run of the batch (offset order per
# partition), so a handler can write them with one statement instead of one each.
BatchHandler = Callable[[asyncpg.Connection, list[Envelope]], Awaitable[None]]


def _one_by_one(handler: Handler) -> BatchHandler:
    async def handle(conn: asyncpg.Connection, events: list[Envelope]) -> None:
        for event in events:
            await handler(conn, event)

    return handle


@dataclass
class _Item:
    tp: TopicPartition
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    envelope: Envelope | None = None
    error: str | None = None


@dataclass
class ConsumerStatus:
    running: bool = False
    last_poll: float = 0.0
    retrying_since: float | None = None
    last_error: str | None = None
    processed: int = 0
    dead_lettered: int = 0
    assigned: list[str] = field(default_factory=list)


class ConsumerRunner:
    """Consumes event types with one handler each, in batches, for one group.

    For each batch: parse every message (invalid ones, and events from a source not in
    ``trusted_sources`` for their type, go to ``<topic>.dlq``),
    then in ONE database transaction record the new event ids in
    ``processed_events`` and call the handler of each new event; after the
    commit, dead-letter and commit offsets (``last offset + 1`` per partition).
    If the batch transaction fails, the events are retried one at a time so a
    poison message cannot block the others: transient failures are retried
    with capped exponential backoff (never dead-lettered), permanent ones are
    dead-lettered with headers naming topic, partition, offset and error.
    """

    def __init__(
        self,
        *,
        bootstrap_servers: str,
        group_id: str,
        handlers: dict[EventType, Handler],
        pool: asyncpg.Pool,
        batch_handlers: dict[EventType, BatchHandler] | None = None,
        publisher: Publisher,
        topic_name: Callable[[str], str] = lambda t: t,
        metrics: ConsumerMetrics | None = None,
        max_records: int = 500,
        max_backoff: float = 10.0,
        unknown_error_attempts: int = 3,
        topic_partitions: int = 3,
        replication_factor: int = 1,
        client_id: str | None = None,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 50,
        security: Mapping[str, Any] | None = None,
        trusted_sources: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        # Per event type, the CloudEvents sources accepted; an event from any other is a dead letter.
        self._trusted = dict(trusted_sources or {})
        self._security = dict(security or {})
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._session_timeout_ms = session_timeout_ms
        self._group = group_id
        self._handlers: dict[str, BatchHandler] = {et.type: _one_by_one(h) for et, h in handlers.items()}
        for et, bh in (batch_handlers or {}).items():
            if et.type in self._handlers:
                raise ValueError(f"{et.type} has both a handler and a batch handler")
            self._handlers[et.type] = bh
        self._topics = sorted({topic_name(et.topic) for et in [*handlers, *(batch_handlers or {})]})
        self._pool = pool
        self._publisher = publisher
        self._metrics = metrics
        self._max_records = max_records
        self._max_backoff = max_backoff
        self._unknown_attempts = unknown_error_attempts
        self._partitions = topic_partitions
        self._replication = replication_factor
        self._client_id = client_id or group_id
        self.status = ConsumerStatus()

    @property
    def topics(self) -> list[str]:
        return list(self._topics)

    def health(self, *, stall_after: float = 30.0) -> str | None:
        """None when healthy, else the reason."""
        st = self.status
        if not st.running:
            return f"consumer {self._group} is not running" + (f": {st.last_error}" if st.last_error else "")
        if st.retrying_since is not None and time.monotonic() - st.retrying_since > stall_after:
            return f"consumer {self._group} retrying since {time.monotonic() - st.retrying_since:.0f}s: {st.last_error}"
        if time.monotonic() - st.last_poll > stall_after:
            return f"consumer {self._group} has not polled for {time.monotonic() - st.last_poll:.0f}s"
        return None

    async def run(self) -> None:
        """Consume until cancelled; reconnects (and recreates topics) after broker failures."""
        backoff = Backoff(initial=0.2, maximum=self._max_backoff)
        await retry_forever(
            functools.partial(self._consume, backoff), what=f"consumer {self._group}", backoff=backoff,
            on_error=self._failed, logger=logger,
        )

    def _failed(self, exc: BaseException) -> None:
        self.status.last_error = repr(exc)

    async def _consume(self, backoff: Backoff) -> None:
        consumer = None
        try:
            await ensure_topics(
                self._bootstrap,
                self._topics + [dlq_topic(t) for t in self._topics],
                partitions=self._partitions,
                replication_factor=self._replication,
                security=self._security,
            )
            consumer = AIOKafkaConsumer(
                *self._topics,
                bootstrap_servers=self._bootstrap,
                group_id=self._group,
                client_id=self._client_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                max_poll_records=self._max_records,
                session_timeout_ms=self._session_timeout_ms,
                heartbeat_interval_ms=max(self._session_timeout_ms // 4, 100),
                fetch_max_wait_ms=self._fetch_max_wait_ms,
                **self._security,
            )
            await consumer.start()
            self.status.running = True
            self.status.last_poll = time.monotonic()
            backoff.reset()
            await self._loop(consumer)
        finally:
            self.status.running = False
            if consumer is not None:
                try:
                    await consumer.stop()
                except Exception:  # already broken; nothing to clean
                    logger.debug("consumer stop failed", exc_info=True)

    async def _loop(self, consumer: AIOKafkaConsumer) -> None:
        # A batch's offsets are committed once it is processed, while the next batch is fetched
        # and processed (one commit in flight, in order): the broker round trip stays off the
        # path of every event. A commit lost to a crash or a rebalance means a redelivery,
        # which the processed-events table absorbs.
        committing: asyncio.Task | None = None
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
                self.status.last_poll = time.monotonic()
                self.status.assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment())
                if batch:
                    started = time.perf_counter()
                    items = [
                        _Item(tp, m.offset, m.key, m.value, list(m.headers or ()))
                        for tp, messages in batch.items()
                        for m in messages
                    ]
                    await self._process(items)
                    if committing is not None:
                        await committing
                    offsets = {tp: messages[-1].offset + 1 for tp, messages in batch.items()}
                    committing = asyncio.create_task(self._commit(consumer, offsets))
                    if self._metrics:
                        self._metrics.batch_seconds.labels(self._group).observe(time.perf_counter() - started)
                if self._metrics:
                    await self._record_lag(consumer)
        finally:
            if committing is not None:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(asyncio.shield(committing), 5)

    def _dead_letter_failed(self, exc: BaseException) -> None:
        self.status.retrying_since = self.status.retrying_since or time.monotonic()
        self.status.last_error = str(exc)

    async def _commit(self, consumer: AIOKafkaConsumer, offsets: dict) -> None:
        try:
            await consumer.commit(offsets)
        except KafkaError as exc:  # rebalanced away: the new owner reprocesses, idempotently
            logger.warning("offset commit failed", extra={"group": self._group, "error": repr(exc)})

    async def _record_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            position = await consumer.position(tp)
            self._metrics.lag.labels(self._group, tp.topic, str(tp.partition)).set(max(highwater - position, 0))

    async def _process(self, items: list[_Item]) -> None:
        valid: list[_Item] = []
        for item in items:
            try:
                item.envelope = Envelope.from_kafka(headers=item.headers, key=item.key, value=item.value)
            except EnvelopeError as exc:
                item.error = str(exc)
                continue
            if item.envelope.type in self._handlers:
                trusted = self._trusted.get(item.envelope.type)
                if trusted is not None and item.envelope.source not in trusted:
                    item.error = (f"untrusted source {item.envelope.source[:200]!r} for {item.envelope.type} "
                                  f"(trusted: {', '.join(sorted(trusted))})")
                    continue
                valid.append(item)
        try:
            await self._apply(valid)
        except Exception as exc:
            logger.warning(
                "batch failed; retrying events one by one",
                extra={"group": self._group, "events": len(valid), "error": repr(exc)},
            )
            for item in valid:
                await self._apply_one(item)
        self.status.processed += len(valid)
        for item in items:
            if item.error is not None:
                await self._dead_letter(item)
        self.status.retrying_since = None
        if self._metrics:
            now = datetime.now(UTC)
            for item in valid:
                if item.error is None and item.envelope is not None:
                    self._metrics.processed.labels(self._group, item.tp.topic, "ok").inc()
                    self._metrics.event_age_seconds.labels(self._group, item.tp.topic).observe(
                        max((now - item.envelope.time).total_seconds(), 0.0)
                    )

    async def _apply(self, items: list[_Item]) -> None:
        if not items:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            ids = [i.envelope.id for i in items]
            topics = [i.tp.topic for i in items]
            new_ids = {
                r["event_id"]
                for r in await conn.fetch(
                    """INSERT INTO processed_events (event_id, topic)
                       SELECT * FROM unnest($1::text[], $2::text[])
                       ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
                    ids,
                    topics,
                )
            }
            new: list[Envelope] = []
            for item in items:
                if item.envelope.id in new_ids:
                    new_ids.discard(item.envelope.id)  # the same event twice in one batch: once
                    new.append(item.envelope)
            # consecutive events of one type go to their handler together
            for event_type, run in itertools.groupby(new, key=lambda e: e.type):
                await self._handlers[event_type](conn, list(run))

    async def _apply_one(self, item: _Item) -> None:
        attempt = 0
        delay = 0.1
        while True:
            try:
                await self._apply([item])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                kind = classify(exc)
                attempt += 1
                if kind == "permanent" or (kind == "unknown" and attempt >= self._unknown_attempts):
                    item.error = f"{type(exc).__name__}: {exc}"
                    logger.error(
                        "event dead-lettered",
                        extra={"group": self._group, "topic": item.tp.topic, "partition": item.tp.partition,
                               "offset": item.offset, "event_id": item.envelope.id, "error": item.error},
                    )
                    return
                self.status.retrying_since = self.status.retrying_since or time.monotonic()
                self.status.last_error = repr(exc)
                logger.warning(
                    "event failed; retrying",
                    extra={"group": self._group, "event_id": item.envelope.id, "attempt": attempt,
                           "kind": kind, "error": repr(exc), "backoff_s": delay},
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._max_backoff)

    async def _dead_letter(self, item: _Item) -> None:
        headers = [h for h in item.headers if not h[0].startswith("dlq_")] + [
            ("dlq_source_topic", item.tp.topic.encode()),
            ("dlq_source_partition", str(item.tp.partition).encode()),
            ("dlq_source_offset", str(item.offset).encode()),
            ("dlq_consumer_group", self._group.encode()),
            ("dlq_error", (item.error or "")[:2000].encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        letter = (dlq_topic(item.tp.topic), item.key, headers, item.value or b"")
        # a dead letter is not dropped because Kafka is briefly down
        await retry_forever(
            functools.partial(self._publisher.send_raw_batch, [letter]),
            what=f"dead-lettering {item.tp.topic}:{item.tp.partition}:{item.offset}", logger=logger,
            backoff=Backoff(initial=0.1, maximum=self._max_backoff), on_error=self._dead_letter_failed,
            retry_on=(PublishUnavailable,),
        )
        self.status.dead_lettered += 1
        if self._metrics:
            self._metrics.processed.labels(self._group, item.tp.topic, "dead_lettered").inc()
