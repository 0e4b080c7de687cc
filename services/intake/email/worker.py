"""Mail parsing off the event loop: worker processes, each job within a time budget.

Parsing is CPU work (decoding, HTML, quote detection) that would hold the GIL,
so a worker thread would still stall the event loop; a process does not. Each
worker takes one message at a time over a pipe. A message not parsed within
``timeout`` seconds gets its worker killed and replaced, and is answered with
:class:`ParseTimeout` (a permanent refusal: it would take as long again). At
most ``max_waiting`` messages wait for a free worker; beyond that
:class:`ParserBusy` (a temporary refusal) is raised at once.

The pipe I/O and the replacement of a worker run in a small thread pool of
their own, so the event loop only ever awaits.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection

from services.intake.email.parse import ParsedEmail, parse_email
from shared.errors import TransientError

logger = logging.getLogger(__name__)


class ParseTimeout(Exception):
    """The message was not parsed within the time budget."""


class ParserBusy(TransientError):
    """Every worker is busy and too many messages already wait: try again later."""


def _serve(conn: Connection) -> None:
    """A worker process: parse each message received, send back the result, until the pipe closes."""
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        conn.send(parse_email(raw))


class _Worker:
    def __init__(self, context: multiprocessing.context.BaseContext) -> None:
        self.conn, child = context.Pipe(duplex=True)
        self.process = context.Process(target=_serve, args=(child,), name="keymoment-mail-parser", daemon=True)
        self.process.start()
        child.close()

    def parse(self, raw: bytes, timeout: float) -> ParsedEmail:
        """Blocking: send, wait at most ``timeout`` for the answer."""
        deadline = time.monotonic() + timeout
        self.conn.send_bytes(raw)
        if not self.conn.poll(max(0.0, deadline - time.monotonic())):
            raise ParseTimeout(f"not parsed within {timeout:g} s")
        return self.conn.recv()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(5)
        self.conn.close()

    def stop(self) -> None:
        self.conn.close()  # the worker's recv ends: it exits
        self.process.join(5)
        if self.process.is_alive():
            self.kill()


class MailParser:
    """``await parse(raw)`` in one of ``workers`` processes, within ``timeout`` seconds."""

    def __init__(self, *, workers: int = 1, timeout: float = 10.0, max_waiting: int | None = None) -> None:
        self.workers = workers
        self.timeout = timeout
        self.max_waiting = max_waiting if max_waiting is not None else 20 * workers
        self._context = multiprocessing.get_context("spawn")  # no fork of a process with threads and sockets
        self._threads = ThreadPoolExecutor(max_workers=workers + 1, thread_name_prefix="mail-parser")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._waiting = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.timeouts = 0

    async def start(self) -> None:
        self._loop = loop = asyncio.get_running_loop()
        started = await asyncio.gather(*(loop.run_in_executor(self._threads, self._spawn) for _ in range(self.workers)))
        for worker in started:
            self._idle.put_nowait(worker)

    def _spawn(self) -> _Worker:
        worker = _Worker(self._context)
        self._all.add(worker)
        return worker

    async def stop(self) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(self._threads, w.stop) for w in list(self._all)),
                             return_exceptions=True)
        self._all.clear()
        self._threads.shutdown(wait=False, cancel_futures=True)

    @property
    def alive(self) -> bool:
        return bool(self._all) and all(w.process.is_alive() for w in self._all)

    async def parse(self, raw: bytes) -> ParsedEmail:
        if self._waiting >= self.max_waiting:
            raise ParserBusy(f"{self._waiting} messages already wait for a mail parser")
        self._waiting += 1
        try:
            worker = await self._idle.get()
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._threads, worker.parse, raw, self.timeout)
        except BaseException as exc:  # timeout, a dead worker, or the caller cancelled mid-parse
            self._replace(worker, exc)
            raise
        self._idle.put_nowait(worker)
        return result

    def _replace(self, worker: _Worker, reason: BaseException) -> None:
        """Kill a worker whose job went wrong and put a fresh one in its place (in the background)."""
        if isinstance(reason, ParseTimeout):
            self.timeouts += 1
        logger.warning("mail parser replaced", extra={"reason": type(reason).__name__})
        self._all.discard(worker)

        def replace() -> None:
            worker.kill()
            try:
                fresh = self._spawn()
            except Exception:
                logger.exception("mail parser could not be restarted")
                return
            self._loop.call_soon_threadsafe(self._idle.put_nowait, fresh)

        self._threads.submit(replace)
