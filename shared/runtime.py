"""The plumbing every service app runs on: database pool and migrations, the
process's Kafka publisher, the outbox relay, consumers, background tasks and
the health and metrics endpoints.

A service's ``create_app(settings)`` builds a :class:`ServiceRuntime`, adds
its own consumers and tasks, and lets :func:`install` wire the lifespan and
the ``/healthz``, ``/readyz`` and ``/metrics`` routes.

Health means "can do its job" (README, "Health"):

* ``/healthz`` (liveness): the event loop runs (a heartbeat task ticks; a
  loop blocked longer than ``LIVENESS_LOOP_STALL_SECONDS`` fails it, and a
  watchdog thread logs where it is stuck) and no background task died.
  Dependencies never fail liveness: restarting does not bring them back.
* ``/readyz`` (readiness, whether to send this process traffic): by the
  service's :class:`Readiness` rule. A producer whose writes have a fallback
  (intake) is ready while Kafka *or* its outbox can take a write and says which
  path it is on; a service whose API reads its database is ready while the
  database answers, whatever the broker does (consuming sheds no traffic).
  Reasons name what is down (``database``, ``kafka``), never exception text.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
import threading
import time
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import iter_route_contexts
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from shared.auth import AuthError, BearerAuth, Principal, StaticToken
from shared.auth import error_response as auth_error_response
from shared.clock import Clock, SystemClock
from shared.db import create_pool, migrate, wait_for_database, wait_for_migrations
from shared.errors import PERMANENT, TRANSIENT, classify
from shared.events import Envelope, EventType
from shared.kafka import BatchHandler, ConsumerRunner, Handler, Publisher, Wanted, _one_by_one, ensure_topics
from shared.http import RequestLimits, RouteLimit, bounded_errors
from shared.kafka_security import client_security
from shared.metrics import PREFIX, ConsumerMetrics, HttpMetrics, MetricsMiddleware, new_registry
from shared.outbox import OutboxRelay, publish_durably
from shared.retry import Backoff, retry_forever
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

Hook = Callable[["ServiceRuntime"], Awaitable[None]]


@dataclass(frozen=True)
class Retention:
    """How long rows of one table are kept (:meth:`ServiceRuntime.retain`)."""

    table: str
    column: str  # a column of the row, or an SQL expression over it (e.g. its parent row's time)
    days: int
    # column -> SQL expression: rows past retention are kept with these values (anonymised) instead
    # of deleted. Expressions are code, never input; they may use $2, the runtime clock's now.
    anonymise: Mapping[str, str] | None = None
    where: str | None = None  # an extra SQL condition rows must meet to be pruned

    def statement(self) -> str:
        """The SQL pruning the rows past retention (``$1``: the cutoff; ``$2``, if used: now)."""
        where = f"{self.column} < $1" + (f" AND ({self.where})" if self.where else "")
        if not self.anonymise:
            return f"DELETE FROM {self.table} WHERE {where}"
        columns, values = ", ".join(self.anonymise), ", ".join(self.anonymise.values())
        assignments = ", ".join(f"{c} = {v}" for c, v in self.anonymise.items())
        # rows anonymised before are left alone (no rewrite every hour)
        return f"UPDATE {self.table} SET {assignments} WHERE {where} AND ROW({columns}) IS DISTINCT FROM ROW({values})"

    async def apply(self, conn: asyncpg.Connection | asyncpg.Pool, *, now: datetime) -> int:
        """Prune once; the rows deleted or anonymised."""
        sql = self.statement()
        cutoff = now - timedelta(days=self.days)
        result = await (conn.execute(sql, cutoff, now) if "$2" in sql else conn.execute(sql, cutoff))
        return int(result.split()[-1])


class Readiness(StrEnum):
    """When a service is ready for traffic (``/readyz``)."""

    DATABASE = "database"
    """Its API reads and writes its database: ready while the database answers. The broker does not
    count (the consumers catch up when it is back; taking the pod out of the Service sheds nothing)."""
    WRITE_PATH = "kafka_or_outbox"
    """It accepts writes onto Kafka with the outbox as fallback (intake): ready while either can take
    one; ``/readyz`` says which (``"path": "kafka" | "outbox"``)."""


class LoopWatchdog:
    """Proof that the event loop runs: a task ticks every ``interval``; a thread notices when it has not
    ticked for ``stall_after`` seconds and logs the loop thread's stack once per stall (what blocks it).
    ``lag`` is how late the last tick was (``keymoment_event_loop_lag_seconds``)."""

    def __init__(self, *, stall_after: float, interval: float = 0.5, on_lag: Callable[[float], None] | None = None):
        self.stall_after = stall_after
        self.interval = interval
        self.last_tick = time.monotonic()
        self.lag = 0.0
        self.stalls = 0  # stalls the thread saw (each logged once)
        self._on_lag = on_lag
        self._loop_thread: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def stalled_for(self) -> float | None:
        """Seconds since the last tick when that is over ``stall_after``, else None."""
        since = time.monotonic() - self.last_tick
        return since if since > self.stall_after else None

    async def run(self) -> None:
        self._loop_thread = threading.get_ident()
        self.last_tick = time.monotonic()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="event-loop-watchdog", daemon=True)
        self._thread.start()
        try:
            while True:
                due = time.monotonic() + self.interval
                await asyncio.sleep(self.interval)
                now = time.monotonic()
                self.last_tick = now
                self.lag = max(now - due, 0.0)
                if self._on_lag is not None:
                    self._on_lag(self.lag)
        finally:
            self._stop.set()

    def _watch(self) -> None:
        reported_tick = None
        while not self._stop.wait(min(self.interval, self.stall_after / 2)):
            stalled = self.stalled_for()
            if stalled is None or reported_tick == self.last_tick:
                continue
            reported_tick = self.last_tick
            self.stalls += 1
            frame = sys._current_frames().get(self._loop_thread)  # noqa: SLF001 - the documented way to see it
            stack = "".join(traceback.format_stack(frame)[-12:]) if frame is not None else "(no frame)"
            logger.error("event loop stalled", extra={"stalled_s": round(stalled, 1), "stack": stack})


@dataclass
class ServiceRuntime:
    settings: ServiceSettings
    migrations: Path
    registry: CollectorRegistry = field(default_factory=new_registry)
    pool: asyncpg.Pool | None = None
    # Feedback events per consumer transaction (an effect is stored at its batch's commit).
    consumer_max_records: int = 500
    # The time retention is measured against (tests move it).
    clock: Clock = field(default_factory=SystemClock)
    relay: OutboxRelay | None = None
    consumers: list[ConsumerRunner] = field(default_factory=list)
    tasks: list[asyncio.Task] = field(default_factory=list)
    # Topics (logical names) this service publishes; created at start.
    produces: list[EventType] = field(default_factory=list)
    # When /readyz says ready (see Readiness).
    readiness: Readiness = Readiness.DATABASE
    _consumes: dict[EventType, Handler] = field(default_factory=dict)
    _consumes_batches: dict[EventType, BatchHandler] = field(default_factory=dict)
    _wanted: dict[EventType, Wanted] = field(default_factory=dict)
    _on_start: list[Hook] = field(default_factory=list)
    _retention: list[Retention] = field(default_factory=list)
    _on_stop: list[Hook] = field(default_factory=list)
    _checks: list[Callable[[], Awaitable[str | None]]] = field(default_factory=list)
    _on_scrape: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    _exposition: list[Callable[[], bytes]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.started = False  # start() finished, the service's own start-up hooks included
        # Built now (not connected) so that a service's context can be built whole in its
        # app factory with the publisher in it; it connects in :meth:`start`.
        self.kafka_security = client_security(self.settings)  # TLS/SASL options of every Kafka client
        self.publisher = Publisher(
            self.settings.kafka_bootstrap_servers, client_id=self.settings.service_name, security=self.kafka_security
        )
        self.consumer_metrics = ConsumerMetrics(self.registry)
        self.http_metrics = HttpMetrics(self.registry, self.settings.service_name)
        self._outbox_pending = Gauge(
            f"{PREFIX}_outbox_pending_events", "Events written to the outbox and not yet published.",
            ["service"], registry=self.registry,
        )
        self._outbox_dead_letters = Gauge(
            f"{PREFIX}_outbox_dead_letters", "Outbox rows Kafka refused for good, set aside (keymoment dlq outbox).",
            ["service"], registry=self.registry,
        )
        loop_lag = Gauge(f"{PREFIX}_event_loop_lag_seconds", "How late the event loop's last heartbeat tick was.",
                         ["service"], registry=self.registry).labels(self.settings.service_name)
        self.watchdog = LoopWatchdog(stall_after=self.settings.liveness_loop_stall_seconds, on_lag=loop_lag.set)

    # --- configuration (before start) -------------------------------------------------
    def consume(self, event_type: EventType, handler: Handler) -> None:
        """Handle events of ``event_type``; only those from its producers' sources
        (``event_type.sources``): any other source's is dead-lettered unhandled."""
        self._consumes[event_type] = handler

    @property
    def consumes(self) -> list[EventType]:
        """Event types this service consumes (its consumer group reads their topics)."""
        return [*self._consumes, *self._consumes_batches]

    def trusted_sources(self) -> dict[str, frozenset[str]]:
        """Per consumed event type, the CloudEvents sources its consumer accepts: its producers'
        (``EventType.producers``); an event from any other source is dead-lettered unhandled."""
        return {et.type: et.sources for et in self.consumes}

    def consume_batches(self, event_types: EventType | Sequence[EventType], handler: BatchHandler, *,
                        wanted: Wanted | None = None) -> None:
        """Like :meth:`consume`, but the handler takes a transaction's new events of this type at once.
        Given several types, it takes all of theirs in one call (offset order per partition): a service
        whose events must be applied together, e.g. to take its row locks in one order (reporting).

        ``wanted(pool)``: whether the handler has anything to do with these events now (asked once per
        fetched batch that holds some); when not, they are passed over unread — for a handler that
        acts only on what some configuration asks for, so that none costs nothing."""
        for event_type in [event_types] if isinstance(event_types, EventType) else event_types:
            self._consumes_batches[event_type] = handler
            if wanted is not None:
                self._wanted[event_type] = wanted

    def registered_handlers(self) -> dict[EventType, BatchHandler]:
        """Every consumed event type with its handler, as the consumer runner calls it: a batch's
        events of that type at once (a one-event handler is called for each in turn)."""
        return {**{et: _one_by_one(h) for et, h in self._consumes.items()}, **self._consumes_batches}

    def retain(self, table: str, column: str, days: int, *, anonymise: Mapping[str, str] | None = None,
               where: str | None = None) -> None:
        """Keep rows of ``table`` (in the service's schema) for ``days`` after ``column`` (by the
        runtime's clock; a column, or an SQL expression over the row such as its parent's time);
        older ones are deleted hourly. The one pruning mechanism of every service.

        With ``anonymise`` (``{column: SQL expression}``, e.g. ``{"customer": "NULL"}``) older rows
        are kept with those columns set instead (an alert kept for the KPIs, its customer's details
        cleared); expressions may use ``$2``, the clock's now. ``where``: an extra SQL condition a
        row must meet to be pruned (e.g. only mail that was sent or given up)."""
        self._retention.append(Retention(table, column, days, anonymise=anonymise, where=where))

    def on_scrape(self, refresh: Callable[[], Awaitable[None]]) -> None:
        """Refresh database-backed gauges when ``/metrics`` is scraped (errors are logged, not raised)."""
        self._on_scrape.append(refresh)

    def expose(self, text: Callable[[], bytes]) -> None:
        """Append ready-rendered exposition text to every ``/metrics`` answer (series kept
        outside the registry, e.g. reporting's cx_* snapshot)."""
        self._exposition.append(text)

    def exposition(self) -> bytes:
        """The ``/metrics`` body: the registry's series, then every :meth:`expose` text."""
        return generate_latest(self.registry) + b"".join(text() for text in self._exposition)

    def on_start(self, hook: Hook) -> None:
        self._on_start.append(hook)

    def on_stop(self, hook: Hook) -> None:
        self._on_stop.append(hook)

    def readiness_check(self, check: Callable[[], Awaitable[str | None]]) -> None:
        """Add a check returning None when ready, else the reason."""
        self._checks.append(check)

    def spawn(self, coro: Awaitable[None], name: str) -> asyncio.Task:
        """Start a background task whose handle is kept, cancelled and awaited on stop."""
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(self._task_done)
        self.tasks.append(task)
        return task

    @staticmethod
    def _task_done(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.error("background task died", extra={"task": task.get_name()}, exc_info=task.exception())

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        s = self.settings
        dsn = s.dsn()
        self.spawn(self.watchdog.run(), f"{s.service_name}-loop-watchdog")
        await wait_for_database(dsn, timeout=30)
        # Shared tables the settings fragments bring (MailSettings: the mail queue), before the service's own.
        components = s.migration_components()
        conn = await asyncpg.connect(dsn)
        try:
            if s.migrate_on_start:
                applied = await migrate(conn, schema=s.schema, directory=self.migrations, components=components)
            else:  # a separate step (`keymoment migrate SERVICE`, the Kubernetes Job) applies them
                applied = []
                await wait_for_migrations(conn, schema=s.schema, directory=self.migrations, components=components)
        finally:
            await conn.close()
        if applied:
            logger.info("migrations applied", extra={"applied": applied})
        self.pool = await create_pool(dsn, schema=s.schema, min_size=s.database_pool_min, max_size=s.database_pool_max)
        await self.publisher.start(wait=False)
        self.spawn(self._ensure_produced_topics(), f"{s.service_name}-topics")
        self.relay = OutboxRelay(self.pool, self.publisher, schema=s.schema)
        self.spawn(self.relay.run(), f"{s.service_name}-outbox-relay")
        self.spawn(self._prune(), f"{s.service_name}-pruner")
        if self._consumes or self._consumes_batches:
            runner = ConsumerRunner(
                bootstrap_servers=s.kafka_bootstrap_servers,
                group_id=s.consumer_group,
                handlers=self._consumes,
                batch_handlers=self._consumes_batches,
                pool=self.pool,
                publisher=self.publisher,
                topic_name=s.topic,
                metrics=self.consumer_metrics,
                max_records=self.consumer_max_records,
                topic_partitions=s.kafka_topic_partitions,
                replication_factor=s.kafka_replication_factor,
                client_id=s.service_name,
                session_timeout_ms=s.kafka_session_timeout_ms,
                fetch_max_wait_ms=s.kafka_fetch_max_wait_ms,
                security=self.kafka_security,
                trusted_sources=self.trusted_sources(),
                wanted=self._wanted,
            )
            self.consumers.append(runner)
            self.spawn(runner.run(), f"{s.service_name}-consumer")
        for hook in self._on_start:
            await hook(self)
        self.started = True

    async def publish_durably(self, events: list[tuple[str, Envelope]]) -> str:
        """Make events durable: acknowledged by Kafka, or (Kafka away) committed to the outbox,
        keeping their order behind this process's unrelayed outbox rows; ``"kafka"`` or
        ``"outbox"``, or :class:`~shared.errors.NotDurable`. A :data:`~shared.outbox.DurablePublish`
        for service code (call it once started)."""
        return await publish_durably(self.publisher, self.pool, events, relay=self.relay)

    @property
    def retention(self) -> list[Retention]:
        """Every table's retention: consumed event ids for ``PROCESSED_EVENTS_RETENTION_DAYS`` (Kafka
        cannot redeliver them), outbox dead letters as long (they are whole events, personal data
        like a ``.dlq`` topic's copies, which Kafka keeps 7 days), then whatever the service and its
        components asked for."""
        days = self.settings.processed_events_retention_days
        return [Retention("processed_events", "processed_at", days), Retention("outbox_dead_letters", "failed_at", days),
                *self._retention]

    async def prune_once(self) -> dict[str, int]:
        """Delete (or anonymise) rows past their retention; rows changed per table."""
        now = self.clock.now()
        changed: dict[str, int] = {}
        for rule in self.retention:
            try:
                count = await rule.apply(self.pool, now=now)
                changed[rule.table] = changed.get(rule.table, 0) + count
                logger.info("pruned old rows", extra={"table": rule.table, "rows": count,
                                                      "how": "anonymised" if rule.anonymise else "deleted"})
            except Exception as exc:  # database briefly away: try again next round
                logger.warning("pruning failed", extra={"table": rule.table, "error": repr(exc)})
        return changed

    async def _prune(self, every_s: float = 3600.0) -> None:
        while True:
            await self.prune_once()
            await asyncio.sleep(every_s)

    async def _ensure_produced_topics(self) -> None:
        s = self.settings
        topics = [s.topic(et.topic) for et in self.produces]
        if topics:  # the broker may not be up yet: keep trying in the background
            await retry_forever(
                partial(ensure_topics, s.kafka_bootstrap_servers, topics,
                        partitions=s.kafka_topic_partitions, replication_factor=s.kafka_replication_factor,
                        security=self.kafka_security),
                what="creating topics", backoff=Backoff(initial=0.2, maximum=5.0), logger=logger,
            )

    async def stop(self) -> None:
        for hook in reversed(self._on_stop):
            try:
                await hook(self)
            except Exception:
                logger.exception("stop hook failed")
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()
        await self.publisher.stop()
        if self.pool is not None:
            await self.pool.close()

    # --- health ---------------------------------------------------------------------
    def liveness_reasons(self) -> list[str]:
        """Why this process should be restarted: its event loop stalls, or a background task died."""
        reasons = []
        if (stalled := self.watchdog.stalled_for()) is not None:
            reasons.append(f"event loop stalled for {stalled:.0f}s")
        reasons += [f"background task {t.get_name()} died" for t in self.tasks
                    if t.done() and (t.cancelled() or t.exception() is not None)]
        return reasons

    async def readiness_state(self) -> dict[str, Any]:
        """``/readyz``'s answer: ``{"status": "ok" | "unavailable", "reasons": [...]}`` plus, by the
        service's rule, the write path (``"path"``) or what is down without making it unready
        (``"degraded"``). Reasons and names say which dependency, never an exception's text."""
        if self.pool is None or not self.started:
            return {"status": "unavailable", "reasons": ["starting"]}
        database, kafka = await asyncio.gather(self._database_writable(), self._kafka_reachable())
        reasons: list[str] = []
        state: dict[str, Any] = {}
        if self.readiness is Readiness.WRITE_PATH:
            if kafka and not (self.relay is not None and self.relay.backlog):
                state["path"] = "kafka"
            elif database:
                state["path"] = "outbox"
            else:
                reasons += [name for name, up in (("kafka", kafka), ("database", database)) if not up]
                if kafka:
                    reasons.append("outbox backlog")  # events wait in the outbox, which is unreachable
            degraded = [name for name, up in (("kafka", kafka), ("database", database)) if not up]
        else:
            if not database:
                reasons.append("database")
            degraded = [] if kafka else ["kafka"]
            if self.consumers and any(c.health() for c in self.consumers):
                degraded.append("consumer")
        reasons += [f"background task {t.get_name()} died" for t in self.tasks
                    if t.done() and (t.cancelled() or t.exception() is not None)]
        for check in self._checks:
            if reason := await check():
                reasons.append(reason)
        if degraded and not reasons:
            state["degraded"] = degraded
        return {"status": "unavailable" if reasons else "ok", **({"reasons": reasons} if reasons else {}), **state}

    async def _database_writable(self) -> bool:
        """The database answers and takes writes (not a standby during a failover)."""
        try:
            async with asyncio.timeout(2):
                return await self.pool.fetchval("SELECT NOT pg_is_in_recovery()")
        except Exception as exc:  # the reason is the name; the exception goes to the log only
            logger.info("readiness: database unreachable", extra={"error": type(exc).__name__})
            return False

    async def _kafka_reachable(self) -> bool:
        if not self.publisher.available:
            return False
        try:
            await self.publisher.check()
            return True
        except Exception as exc:
            logger.info("readiness: kafka unreachable", extra={"error": type(exc).__name__})
            return False

    async def not_ready_reasons(self) -> list[str]:
        return (await self.readiness_state()).get("reasons", [])

    async def refresh_gauges(self) -> None:
        if self.pool is not None:
            with contextlib.suppress(Exception):
                self._outbox_pending.labels(self.settings.service_name).set(await self.relay.pending())
                self._outbox_dead_letters.labels(self.settings.service_name).set(await self.relay.dead_letters())
            for refresh in self._on_scrape:
                try:
                    await refresh()
                except Exception as exc:  # database briefly away: the gauge keeps its last value
                    logger.warning("gauge refresh failed", extra={"error": repr(exc)})


def install(
    app: FastAPI,
    runtime: ServiceRuntime,
    *,
    context: object = None,
    limits: Mapping[str, int | RouteLimit] | None = None,
    problem: Callable[[str, str], dict] | None = None,
) -> None:
    """Wire the runtime into the app: lifespan, request limits, HTTP metrics, health and
    metrics routes, and the one answer to a refused request (:mod:`shared.auth`) and to an
    invalid one (422 listing :func:`~shared.http.bounded_errors`). ``context`` is the
    service's frozen ``Context`` (its components), kept as ``app.state.context`` beside
    ``app.state.runtime``; routes reach them with :func:`app_context` and :func:`app_pool`.

    Every request passes :class:`~shared.http.RequestLimits` before routing: each route's
    body is bounded by ``HTTP_MAX_BODY_BYTES`` or by its own entry in ``limits`` (route path
    template -> bytes or :class:`~shared.http.RouteLimit`; each must name a route of the app,
    checked at start), JSON bodies by ``HTTP_MAX_JSON_DEPTH``. ``problem(code, detail)``
    shapes their answers (``{"detail": ..., "code": ...}`` by default). ``/metrics`` requires ``METRICS_TOKEN`` (or
    the admin token) as a bearer token when it is set."""
    settings = runtime.settings
    app.state.runtime = runtime
    app.state.context = context
    app.add_exception_handler(AuthError, _auth_error)
    app.add_exception_handler(asyncpg.PostgresError, _database_error)
    app.add_exception_handler(asyncpg.InterfaceError, _database_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    limits = dict(limits or {})

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        _check_limited_routes(app, limits)
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app.router.lifespan_context = lifespan
    app.add_middleware(
        RequestLimits, limits=limits, default=settings.http_max_body_bytes,
        max_json_depth=settings.http_max_json_depth, **({"problem": problem} if problem else {}),
    )
    app.add_middleware(MetricsMiddleware, metrics=runtime.http_metrics)
    scraper = _metrics_auth(settings)

    @app.get("/healthz", tags=["health"], summary="Liveness: the event loop runs and no background task died",
             responses={503: {"description": "Restart me: the event loop stalls or a background task died."}})
    async def healthz() -> JSONResponse:
        if reasons := runtime.liveness_reasons():
            return JSONResponse({"status": "unavailable", "reasons": reasons}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"], summary="Readiness: this process can do its job (README, Health)",
             responses={503: {"description": "Not ready; `reasons` names what is down (e.g. `database`)."}})
    async def readyz() -> JSONResponse:
        state = await runtime.readiness_state()
        return JSONResponse(state, status_code=200 if state["status"] == "ok" else 503)

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request):  # noqa: ANN202 - a plain Response
        if scraper is not None:
            (await scraper.authenticate(request.headers.get("authorization"))).require(METRICS_READ)
        await runtime.refresh_gauges()
        return Response(runtime.exposition(), media_type=CONTENT_TYPE_LATEST)


METRICS_READ = "metrics:read"
"""The scope of ``/metrics`` (``METRICS_TOKEN`` holds it, the admin token holds every scope)."""


def _metrics_auth(settings: ServiceSettings) -> BearerAuth | None:
    """Who may scrape ``/metrics``: anyone when ``METRICS_TOKEN`` is unset, else its holder
    (and the admin token's)."""
    if settings.metrics_token is None:
        return None
    verifiers = [StaticToken(settings.metrics_token, Principal("metrics-scraper", frozenset({METRICS_READ})))]
    if settings.admin_token is not None:
        verifiers.append(StaticToken.admin(settings.admin_token))
    return BearerAuth(*verifiers)


def _check_limited_routes(app: FastAPI, limits: Mapping[str, object]) -> None:
    """Each route path in ``limits`` is one of the app's routes (a typo would silently fall
    back to the default limit)."""
    paths = {route.path for route in iter_route_contexts(app.routes)}
    unknown = sorted(set(limits) - paths)
    if unknown:
        raise ValueError(f"request limits name no route of {app.title}: {', '.join(unknown)}")


async def _invalid_request(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return JSONResponse({"detail": bounded_errors(exc.errors())}, status_code=422)


# Async on purpose: FastAPI runs a sync dependency in its thread pool (a thread hop per request).
async def app_context(request: Request) -> Any:
    """FastAPI dependency: the service's ``Context`` (``Annotated[Context, Depends(app_context)]``)."""
    return request.app.state.context


async def app_pool(request: Request) -> asyncpg.Pool:
    """FastAPI dependency: the runtime's database pool."""
    return request.app.state.runtime.pool


RETRY_AFTER_SECONDS = 5


def invalid_request(loc: tuple[str | int, ...], message: str) -> RequestValidationError:
    """A 422 for a rule a route checks itself (``from`` before ``to``), in the shape of the service's
    request validation errors (the documented 422), never a bare string: ``raise invalid_request(...)``."""
    return RequestValidationError([{"type": "value_error", "loc": loc, "msg": message}])


async def _database_error(request: Request, exc: Exception) -> Response:
    """What a request answers when the database refused it (:func:`shared.errors.classify`): a value it
    cannot store is the request's fault (422, the service's validation shape; a route should have refused
    it first), a database away is 503 with ``Retry-After``; anything else stays a 500 (a bug)."""
    kind = classify(exc)
    if kind == PERMANENT:
        logger.warning("request refused by the database", extra={"path": request.url.path,
                                                                  "error": type(exc).__name__})
        handler = request.app.exception_handlers.get(RequestValidationError, request_validation_exception_handler)
        return await handler(request, invalid_request(("body",), "a value of the request cannot be stored"))
    if kind == TRANSIENT:
        logger.warning("database unavailable", extra={"path": request.url.path, "error": type(exc).__name__})
        return JSONResponse({"detail": "the database is unavailable; retry later"}, status_code=503,
                            headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    raise exc


async def _auth_error(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, AuthError)
    return auth_error_response(exc)


# Allocations between young-generation collections (CPython's default is 700). Request
# and batch handling allocate many short-lived objects; collecting less often, with the
# start-up objects frozen out of every collection, took intake's batch ingest from
# ~18,000 to ~28,000 feedback/s (bench/intake/RESULTS.md).
GC_YOUNG_THRESHOLD = 10_000


def tune_gc() -> None:
    """Freeze what start-up built (modules, schemas, the scorer's model, pools) so that
    collections never walk it again, and collect the young generation less often.
    Call once, when the process has started up."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


async def _tune_gc(_: ServiceRuntime) -> None:
    tune_gc()


def serve(app_factory: Callable[[ServiceSettings], FastAPI], settings: ServiceSettings) -> None:
    """Run one service with uvicorn (the entrypoint of ``python -m services.<name>``)."""
    import uvicorn

    from shared.logging import configure_logging

    configure_logging(settings.service_name, settings.log_level)
    app = app_factory(settings)
    app.state.runtime.on_start(_tune_gc)  # last: after the service's own start-up
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
