"""A consumer process for the crash tests: applies feedback events into
``effects`` through the real ConsumerRunner, optionally dying at a chosen point.

usage: consumer_child.py BOOTSTRAP DSN TOPIC_PREFIX GROUP MODE
MODE: run (until SIGTERM) | crash-after-db-commit (os._exit right after the
first batch's transaction committed, before its offsets are committed)
"""

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from shared.db import create_pool, migrate
from shared.events import FEEDBACK_RECEIVED
from shared.kafka import ConsumerRunner, Publisher

SCHEMA = "crashtest"


class CrashingRunner(ConsumerRunner):
    async def _process(self, items):
        await super()._process(items)  # the DB transaction has committed here
        os._exit(17)  # killed before the offsets are committed


async def main() -> None:
    bootstrap, dsn, prefix, group, mode = sys.argv[1:6]
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await migrate(conn, schema=SCHEMA, directory=Path(__file__).parent / "migrations")
    await conn.close()
    pool = await create_pool(dsn, schema=SCHEMA)
    publisher = Publisher(bootstrap, client_id="crash-child")
    await publisher.start()

    async def on_feedback(conn, event):
        await conn.execute("INSERT INTO effects (event_id, pid) VALUES ($1, $2)", event.id, os.getpid())
        await asyncio.sleep(0.002)  # a little work per event, so a kill lands mid-batch

    cls = CrashingRunner if mode == "crash-after-db-commit" else ConsumerRunner
    runner = cls(
        bootstrap_servers=bootstrap, group_id=group, handlers={FEEDBACK_RECEIVED: on_feedback},
        pool=pool, publisher=publisher, topic_name=lambda t: prefix + t, max_records=50, topic_partitions=2,
        session_timeout_ms=3_000,
    )
    task = asyncio.create_task(runner.run())
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("started", flush=True)
    await stop.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    print(json.dumps({"received": runner.status.processed}), flush=True)
    await publisher.stop()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())
