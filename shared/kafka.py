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
import logging
import random
import re
import struct
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.errors import InvalidTopicError, KafkaError, MessageSizeTooLargeError, TopicAlreadyExistsError

from shared.errors import (  # noqa: F401 - PermanentError re-exported
    PERMANENT, TRANSIENT, NotPublishable, PermanentError, PublishUnavailable, classify,
)
from shared.events import Envelope, EnvelopeError, EventType, dlq_topic
from shared.metrics import ConsumerMetrics
from shared.retry import Backoff, honour_cancel, retry_forever

logger = logging.getLogger(__name__)

RawMessage = tuple[str, bytes | None, list[tuple[str, bytes]], bytes]



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


# What Kafka takes: topic names of its legal characters, messages under the brokers' default
# message.max.bytes (1 MiB; the dev broker has no limit, a real one refuses more). Checked before sending, so
# a message that can never be published is refused at once (NotPublishable) instead of timing out as if the
# broker were down.
VALID_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
MAX_MESSAGE_BYTES = 1_000_000

# A flush this large goes at once; a smaller one lingers (Publisher linger_ms) for more.
FLUSH_AT = 16

_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (the Java client's ``Utils.murmur2``, aiokafka's ``murmur2``): the same
    value (a test holds them equal), in half the time — the words unpacked at once."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length // 4
    for k in struct.unpack_from(f"<{words}I", data) if words else ():
        k = (k * _M) & _MASK
        k ^= k >> 24
        h = ((h * _M) & _MASK) ^ ((k * _M) & _MASK)
    tail = length & 3
    if tail:
        rest = data[length - tail:]
        if tail == 3:
            h ^= rest[2] << 16
        if tail >= 2:
            h ^= rest[1] << 8
        h = ((h ^ rest[0]) * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    return h ^ (h >> 15)


@functools.lru_cache(maxsize=65_536)
def _keyed_partition(key: bytes, all_partitions: tuple[int, ...]) -> int:
    """``DefaultPartitioner``'s choice for a key."""
    return all_partitions[(murmur2(key) & 0x7FFFFFFF) % len(all_partitions)]


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
    ) -> None:
        self._bootstrap = bootstrap_servers
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
        :class:`PublishUnavailable` in every caller of it (Kafka away), or
        :class:`NotPublishable` when Kafka refused a message of it for good (too
        large, an invalid topic; whoever holds several messages bisects to find
        it); messages of other partitions in that flush may have been written
        (at-least-once: event ids make the retry harmless)."""
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
                if classify(exc) == PERMANENT:  # this flush's messages, not the broker: no cooldown
                    raise NotPublishable(f"kafka refused the messages: {exc!r}") from exc
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
        for topic, key, headers, value in messages:
            if not VALID_TOPIC.fullmatch(topic):
                raise InvalidTopicError(f"{topic[:300]!r} is not a valid topic name")
            size = len(value) + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
            if size > MAX_MESSAGE_BYTES:
                raise MessageSizeTooLargeError(f"a message of {size} bytes is over {MAX_MESSAGE_BYTES}")
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
                    raise MessageSizeTooLargeError(f"a message of {len(value)} bytes does not fit in a record batch")
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
Wanted = Callable[[asyncpg.Pool], Awaitable[bool]]
"""Whether a consumer has anything to do with events of a type right now (asked once per batch that
holds some): when not, they are passed over (offsets committed, nothing decoded, deduped or stored)."""


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
    error: str | None = None  # set: the item is dead-lettered (the full error, kept in the letter's headers)
    reason: str | None = None  # why: one of DEAD_LETTER_REASONS
    summary: str | None = None  # what the log says (no personal data)
    transient_attempts: int = 0  # failures of a transaction holding it that a dependency caused
    unexpected_attempts: int = 0  # failures of it alone that nothing explains: bounded


DEAD_LETTER_REASONS = ("invalid", "unexpected_type", "untrusted_source", "permanent", "unexpected")
"""Why an event went to ``<topic>.dlq`` (the ``dlq_reason`` header and the metric's ``reason`` label):
``invalid`` not a valid Keymoment event; ``unexpected_type`` a valid event of a type this consumer does
not take on that topic; ``permanent`` its data can never be stored (a data error); ``unexpected`` an
unexplained failure of it alone that persisted through ``unexpected_error_attempts`` tries."""


def _safe_summary(exc: BaseException) -> str:
    """What a log line may say about a failure: its kind, never the data it quotes."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, EnvelopeError):
        return exc.summary
    if sqlstate:
        return f"{type(exc).__name__} (SQLSTATE {sqlstate})"
    return type(exc).__name__


@dataclass
class ConsumerStatus:
    running: bool = False
    last_poll: float = 0.0
    retrying_since: float | None = None
    last_error: str | None = None
    processed: int = 0
    dead_lettered: int = 0
    assigned: list[str] = field(default_factory=list)


WANTED_RECHECK_SECONDS = 1.0
"""While every event fetched from a topic is passed over (``wanted`` says nothing is to be done
with them) and the consumer has caught up, the topic is fetched again after this long rather than
continuously: nothing is skipped unread, an event is only seen up to this much later, and an idle
reader costs the broker and itself a fetch and an offset commit a second instead of dozens."""


class ConsumerRunner:
    """Consumes event types with one handler each, in batches, for one group.

    For each batch: parse every message (what is not a valid event, an event of a type this consumer
    does not take on that topic, or an event from a source not trusted for its type goes to
    ``<topic>.dlq``), then in ONE database transaction record the new event ids in
    ``processed_events`` and call the handler of each new event; after the
    commit, dead-letter and commit offsets (``last offset + 1`` per partition).

    A failed transaction is judged by :func:`shared.errors.classify`:

    * transient (a dependency away or busy): the same events are tried again after a capped,
      growing delay, for ever; never dead-lettered, never split;
    * permanent (a data error) or unexpected: the batch is bisected, each half in its own
      transaction, until the event that fails alone is found; a permanent one is dead-lettered at
      once, an unexpected one after ``unexpected_error_attempts`` tries of it alone (each after a
      delay; transient failures on the way are not counted against it).

    Dead letters carry headers naming the source topic, partition, offset, consumer group, reason
    and error; each is logged without the event's content and counted in
    ``keymoment_dead_letters_total{group, topic, reason}``.
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
        unexpected_error_attempts: int = 5,
        topic_partitions: int = 3,
        replication_factor: int = 1,
        client_id: str | None = None,
        session_timeout_ms: int = 10_000,
        fetch_max_wait_ms: int = 50,
        security: Mapping[str, Any] | None = None,
        trusted_sources: Mapping[str, frozenset[str]] | None = None,
        wanted: Mapping[EventType, Wanted] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        # Per event type (its ``ce_type`` header), whether the handler has anything to do right now.
        self._wanted = {et.type: w for et, w in (wanted or {}).items()}
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
        # Handlers are called in registration order, each once per transaction with all its events (a batch
        # handler registered for several types gets all of theirs): the same order in every transaction.
        self._rank: dict[int, int] = {}
        for handler in self._handlers.values():
            self._rank.setdefault(id(handler), len(self._rank))
        self._topics = sorted({topic_name(et.topic) for et in [*handlers, *(batch_handlers or {})]})
        # Each topic carries the types registered for it, nothing else (a scored event published on the
        # received topic must not be counted as received)
        self._expected: dict[str, set[str]] = {}
        for et in [*handlers, *(batch_handlers or {})]:
            self._expected.setdefault(topic_name(et.topic), set()).add(et.type)
        self._pool = pool
        self._publisher = publisher
        self._metrics = metrics
        self._max_records = max_records
        self._max_backoff = max_backoff
        self._unexpected_attempts = unexpected_error_attempts
        self._partitions = topic_partitions
        self._replication = replication_factor
        self._client_id = client_id or group_id
        self.status = ConsumerStatus()
        if metrics is not None:  # every series exists from the start, so the first dead letter is an increase
            for topic in self._topics:
                for reason in DEAD_LETTER_REASONS:
                    metrics.dead_letters.labels(group_id, topic, reason)

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
        resting_until = 0.0  # topics nothing is wanted from are paused until then
        try:
            while True:
                if resting_until and time.monotonic() >= resting_until:
                    consumer.resume(*consumer.paused())
                    resting_until = 0.0
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
                    if self._wanted:
                        caught_up = len(items) < self._max_records
                        items, idle = await self._pass_over_unwanted(items)
                        if idle and caught_up:  # fetched again in a moment, not continuously
                            consumer.pause(*(tp for tp in consumer.assignment() if tp.topic in idle))
                            resting_until = time.monotonic() + WANTED_RECHECK_SECONDS
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

    async def _pass_over_unwanted(self, items: list[_Item]) -> tuple[list[_Item], set[str]]:
        """Drop the events of a type whose ``wanted`` says there is nothing to do with them now, by
        their ``ce_type`` header alone. Asked after the fetch, so an event is passed over only if
        the handler, called instead, would have found nothing to do either. A failed question
        passes nothing over (the normal path then meets the same failure and retries).
        Returns the events kept and the topics whose every fetched event was passed over."""
        types = [next((v for k, v in i.headers if k == "ce_type"), b"").decode("utf-8", "replace") for i in items]
        unwanted = set()
        for event_type in set(types) & self._wanted.keys():
            try:
                if not await self._wanted[event_type](self._pool):
                    unwanted.add(event_type)
            except Exception as exc:  # noqa: BLE001 - the normal path handles (and classifies) it
                logger.debug("wanted check failed", extra={"group": self._group, "error": _safe_summary(exc)})
        if not unwanted:
            return items, set()
        kept = []
        passed: set[str] = set()
        for item, event_type in zip(items, types):
            if event_type in unwanted:
                passed.add(item.tp.topic)
                if self._metrics:
                    self._metrics.processed.labels(self._group, item.tp.topic, "passed_over").inc()
            else:
                kept.append(item)
        return kept, passed - {item.tp.topic for item in kept}

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
                item.error, item.reason, item.summary = str(exc), "invalid", exc.summary
                continue
            if item.envelope.type not in self._expected.get(item.tp.topic, ()):
                item.error = item.summary = f"event type {item.envelope.type} is not expected on {item.tp.topic}"
                item.reason = "unexpected_type"
                continue
            trusted = self._trusted.get(item.envelope.type)
            if trusted is not None and item.envelope.source not in trusted:
                item.error = item.summary = (f"untrusted source {item.envelope.source[:200]!r} for {item.envelope.type} "
                                             f"(trusted: {', '.join(sorted(trusted))})")
                item.reason = "untrusted_source"
                continue
            valid.append(item)
        await self._settle(valid)
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

    async def _settle(self, items: list[_Item]) -> None:
        """Apply ``items`` (offset order), each in a transaction that commits or marks it dead.

        Transient failures retry the same transaction for ever (after a capped delay); any other
        failure splits it in halves, left first, so events before a poison one commit before it and
        events after it commit after it. An event failing alone is dead (permanent) or tried again
        until ``unexpected_error_attempts`` (unexpected)."""
        backoff = Backoff(initial=0.1, maximum=self._max_backoff)
        pending: list[list[_Item]] = [items] if items else []
        while pending:
            chunk = pending.pop()
            try:
                await self._apply(chunk)
                backoff.reset()
                continue
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                honour_cancel()
                kind = classify(exc)
                failed = exc
            if kind == TRANSIENT:
                for item in chunk:
                    item.transient_attempts += 1
                await self._retry_later(chunk, failed, kind, backoff)
                pending.append(chunk)
            elif len(chunk) > 1:
                middle = len(chunk) // 2
                pending += [chunk[middle:], chunk[:middle]]  # the left half is popped first
                if self._metrics:
                    self._metrics.bisections.labels(self._group).inc()
                logger.warning("batch failed; bisecting", extra={
                    "group": self._group, "events": len(chunk), "kind": kind, "error": _safe_summary(failed)})
            else:
                [item] = chunk
                item.unexpected_attempts += kind != PERMANENT
                if kind == PERMANENT or item.unexpected_attempts >= self._unexpected_attempts:
                    item.error = f"{type(failed).__name__}: {failed}"
                    item.reason = "permanent" if kind == PERMANENT else "unexpected"
                    item.summary = _safe_summary(failed)
                    if kind != PERMANENT:  # where it failed, for the fix; not its message (it may quote data)
                        logger.error("event failed unexpectedly; dead-lettering it", extra={
                            "group": self._group, "event_id": item.envelope.id, "error": type(failed).__name__,
                            "traceback": "".join(traceback.format_tb(failed.__traceback__))})
                else:
                    await self._retry_later(chunk, failed, kind, backoff)
                    pending.append(chunk)

    async def _retry_later(self, chunk: list[_Item], exc: BaseException, kind: str, backoff: Backoff) -> None:
        self.status.retrying_since = self.status.retrying_since or time.monotonic()
        self.status.last_error = _safe_summary(exc)
        if self._metrics:
            self._metrics.retries.labels(self._group, kind).inc()
        delay = backoff.next_delay()
        logger.warning("events failed; retrying", extra={
            "group": self._group, "events": len(chunk), "kind": kind, "error": _safe_summary(exc),
            "transient_attempts": chunk[0].transient_attempts, "unexpected_attempts": chunk[0].unexpected_attempts,
            "backoff_s": round(delay, 3)})
        await asyncio.sleep(delay)

    async def _apply(self, items: list[_Item]) -> None:
        if not items:
            return
        async with self._pool.acquire() as conn, conn.transaction():
            # ids in one order in every transaction: two replicas handed the same events (a rebalance)
            # wait for each other instead of deadlocking
            ids, topics = zip(*sorted({(i.envelope.id, i.tp.topic) for i in items}))
            new_ids = {
                r["event_id"]
                for r in await conn.fetch(
                    """INSERT INTO processed_events (event_id, topic)
                       SELECT * FROM unnest($1::text[], $2::text[])
                       ON CONFLICT (event_id) DO NOTHING RETURNING event_id""",
                    list(ids),
                    list(topics),
                )
            }
            new: list[Envelope] = []
            for item in items:
                if item.envelope.id in new_ids:
                    new_ids.discard(item.envelope.id)  # the same event twice in one batch: once
                    new.append(item.envelope)
            calls: dict[int, tuple[BatchHandler, list[Envelope]]] = {}
            for event in new:  # offset order per partition, kept within each call
                handler = self._handlers[event.type]
                calls.setdefault(id(handler), (handler, []))[1].append(event)
            for key in sorted(calls, key=self._rank.__getitem__):
                handler, events = calls[key]
                await handler(conn, events)

    async def _dead_letter(self, item: _Item) -> None:
        headers = [h for h in item.headers if not h[0].startswith("dlq_")] + [
            ("dlq_source_topic", item.tp.topic.encode()),
            ("dlq_source_partition", str(item.tp.partition).encode()),
            ("dlq_source_offset", str(item.offset).encode()),
            ("dlq_consumer_group", self._group.encode()),
            ("dlq_reason", (item.reason or "permanent").encode()),
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
        event_id = dict(item.headers).get("ce_id", b"").decode("utf-8", "replace")[:200] or None
        logger.error("event dead-lettered", extra={
            "group": self._group, "topic": item.tp.topic, "partition": item.tp.partition, "offset": item.offset,
            "event_id": event_id, "reason": item.reason, "error": item.summary})
        if self._metrics:
            self._metrics.processed.labels(self._group, item.tp.topic, "dead_lettered").inc()
            self._metrics.dead_letters.labels(self._group, item.tp.topic, item.reason or "permanent").inc()
