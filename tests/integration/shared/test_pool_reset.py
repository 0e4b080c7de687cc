"""The pool's reset: a connection whose session holds state (a LISTEN, a session advisory lock)
goes back to the pool reset in full; any other goes back without a round trip."""

import asyncpg
import pytest

from shared.db import create_pool


async def _pool(database_url):
    return await create_pool(database_url, schema="public", min_size=1, max_size=1)


def _logged(conn, queries: list[str]) -> None:
    conn.add_query_logger(lambda record: queries.append(record.query))


async def test_a_clean_connection_goes_back_without_a_server_round_trip(database_url):
    pool = await _pool(database_url)
    try:
        queries: list[str] = []
        async with pool.acquire() as conn:
            _logged(conn, queries)
            async with conn.transaction():
                assert await conn.fetchval("SELECT 1") == 1
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT 2") == 2
        assert not any("RESET ALL" in q for q in queries), queries
        async with pool.acquire() as conn:  # a transaction left open is still rolled back (by asyncpg)
            tx = conn.transaction()
            await tx.start()
            await conn.execute("CREATE TEMP TABLE never_committed (x int)")
        async with pool.acquire() as conn:
            assert not await conn.fetchval("SELECT to_regclass('pg_temp.never_committed') IS NOT NULL")
    finally:
        await pool.close()


@pytest.mark.filterwarnings("ignore:.*active notification listener:asyncpg.InterfaceWarning")  # left on purpose
async def test_a_session_lock_or_listen_is_reset_when_the_connection_goes_back(database_url):
    pool = await _pool(database_url)
    other = await asyncpg.connect(database_url)
    try:
        marked: list[str] = []
        async with pool.acquire() as conn:
            _logged(conn, marked)
            conn.mark_session_state()
            assert await conn.fetchval("SELECT pg_try_advisory_lock(4242)")
            await conn.add_listener("keymoment_test_channel", lambda *_: None)
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 1
        assert any("RESET ALL" in q for q in marked), marked  # the logger sees the reset it did
        assert await other.fetchval("SELECT pg_try_advisory_lock(4242)")  # released by the reset
        await other.execute("SELECT pg_advisory_unlock(4242)")
        async with pool.acquire() as conn:  # the same (only) connection
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
            queries: list[str] = []
            _logged(conn, queries)
        async with pool.acquire() as conn:
            pass
        assert not any("RESET ALL" in q for q in queries), queries  # clean again: no reset next time

        async with pool.acquire() as conn:  # a listener alone marks the session too
            await conn.add_listener("keymoment_test_channel", lambda *_: None)
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM pg_listening_channels()") == 0
    finally:
        await other.close()
        await pool.close()
