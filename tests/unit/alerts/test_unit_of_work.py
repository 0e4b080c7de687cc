"""The unit of work, the repository interface and the boundaries of the use cases."""

from __future__ import annotations

import inspect
import subprocess
import sys
from datetime import timedelta

import pytest

from services.alerts import feedback
from services.alerts.domain import Moment
from services.alerts.ports import Repository
from services.alerts.repository import AlertsRepository
from services.alerts.unit_of_work import UnitOfWork
from shared.errors import TransientError
from tests.unit.alerts.fakes import InMemoryRepository
from tests.unit.alerts.world import START, event, fb


def _moment(feedback_id: str, mot: int, minutes: int, key: str = "id:c-1") -> Moment:
    return Moment(customer_key=key, feedback_id=feedback_id, mot=mot, channel="web", location=None, touchpoint=None,
                  at=START + timedelta(minutes=minutes))


async def test_customer_history_counts_held_moments_once_with_the_stored_ones():
    repo = InMemoryRepository()
    await repo.add_moments([_moment("f-1", -1, 0), _moment("f-2", 2, 10), _moment("f-old", -3, -60 * 24 * 100)])
    uow = UnitOfWork(repo)
    uow.add_moments([_moment("f-2", 2, 10), _moment("f-3", -2, 20), _moment("f-4", 1, 30, key="id:other")])
    history = await uow.customer_history(customer_key="id:c-1", since=START - timedelta(days=90), exclude=["f-1"])
    assert history.count == 2  # f-2 (stored and held: once) and f-3 (held); f-1 excluded, f-old too old
    assert (history.last.feedback_id, history.worst.feedback_id) == ("f-3", "f-3")
    stored = await repo.customer_histories(customer_keys=["id:c-1"], since=START, exclude=[])
    assert stored["id:c-1"].count == 2  # nothing written


async def test_histories_prefetched_for_a_batch_are_read_once_and_equal_those_read_one_by_one():
    repo = InMemoryRepository()
    await repo.add_moments([_moment("f-1", -1, 0), _moment("f-2", 2, 10), _moment("f-3", -3, 5, key="id:c-2"),
                            _moment("f-9", 1, 1, key="id:c-3")])
    held = [_moment("f-2", 2, 10), _moment("f-4", -2, 20), _moment("f-5", -1, 30, key="id:c-2"),
            _moment("f-6", 3, 40, key="id:c-4")]
    since = START - timedelta(days=90)
    asks = [("id:c-1", ["f-4"]), ("id:c-2", ["f-5"]), ("id:c-4", ["f-6"]), ("id:c-1", ["f-1", "f-4"])]

    one_by_one = UnitOfWork(repo)
    one_by_one.add_moments(held)
    expected = [await one_by_one.customer_history(customer_key=k, since=since, exclude=x) for k, x in asks]
    reads = repo.history_reads

    batch = UnitOfWork(repo)
    batch.add_moments(held)
    await batch.prefetch_histories(["id:c-1", "id:c-2", "id:c-4"], since=since)
    got = [await batch.customer_history(customer_key=k, since=since, exclude=x) for k, x in asks]

    assert got == expected
    assert [h.count for h in got] == [2, 1, 0, 1]
    # one read for the three prefetched, one for the ask excluding a stored feedback (f-1)
    assert (reads, repo.history_reads - reads) == (4, 2)


async def test_writes_are_held_until_the_one_flush_and_refused_after_it(world):
    uow = UnitOfWork(world.repo)
    uow.add_moments([_moment("f-1", -1, 0)])
    assert not world.repo.moments
    await uow.flush()
    assert list(world.repo.moments) == [("id:c-1", "f-1")]
    with pytest.raises(RuntimeError, match="flushed"):
        uow.add_moments([_moment("f-2", -1, 0)])
    with pytest.raises(RuntimeError, match="flushed"):
        await uow.flush()


async def test_an_alert_raised_concurrently_by_another_consumer_fails_the_batch_for_a_retry(world):
    tap = fb(mot=-2, location="store-1")
    elsewhere = InMemoryRepository()  # another consumer got the same feedback under another event id
    await feedback.score_batch(UnitOfWork(elsewhere), world.ctx, [event(tap)])
    [other] = elsewhere.alerts.values()
    world.repo.raised_elsewhere = [other]  # ... and committed it while this batch ran
    with pytest.raises(TransientError, match="raised concurrently"):
        await world.consume(tap)
    assert list(world.repo.alerts) == [other.alert_id] and not world.repo.links  # this batch rolled back


def _signature(cls: type, name: str) -> list[tuple[str, object]]:
    params = inspect.signature(getattr(cls, name)).parameters.values()
    return [(p.name, p.kind) for p in params]


def test_the_real_and_the_in_memory_repository_implement_the_same_interface():
    names = [n for n, v in inspect.getmembers(Repository, inspect.isfunction) if not n.startswith("_")]
    assert "write" in names and "list_alerts" in names
    for name in names:
        assert _signature(AlertsRepository, name) == _signature(Repository, name), name
        assert _signature(InMemoryRepository, name) == _signature(Repository, name), name


def test_the_use_cases_import_neither_the_web_nor_the_broker_nor_the_database():
    use_cases = ["feedback", "notify", "escalation", "recovery", "admin", "queries", "context", "unit_of_work"]
    code = (f"import sys\nfor m in {use_cases!r}: __import__('services.alerts.' + m)\n"
            "print(sorted(m for m in ('fastapi', 'aiokafka', 'asyncpg', 'shared.kafka') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
