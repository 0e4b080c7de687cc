"""The benchmarks' shared helpers: work directories removed unless kept; the load waits for consumers."""

import shutil

import pytest

from bench.common import KEEP_ENV, work_dir


def test_a_run_s_work_directory_is_removed_when_it_ends(monkeypatch):
    monkeypatch.delenv(KEEP_ENV, raising=False)
    with work_dir("unit") as work:
        (work / "pg").mkdir()
        (work / "pg" / "data").write_bytes(b"x" * 1000)
    assert not work.exists()


def test_a_failed_run_keeps_its_work_directory_for_a_look(monkeypatch, capsys):
    monkeypatch.delenv(KEEP_ENV, raising=False)
    with pytest.raises(RuntimeError), work_dir("unit") as work:
        (work / "alerts.log").write_text("what went wrong")
        raise RuntimeError("broker never came up")
    try:
        assert (work / "alerts.log").read_text() == "what went wrong"
        assert str(work) in capsys.readouterr().err
    finally:
        shutil.rmtree(work)


def test_bench_keep_keeps_it(monkeypatch):
    monkeypatch.setenv(KEEP_ENV, "1")
    with work_dir("unit") as work:
        (work / "mail").mkdir()
    try:
        assert (work / "mail").is_dir()
    finally:
        shutil.rmtree(work)


def _lag(group: str, topic: str, partition: int) -> str:
    return f'keymoment_consumer_lag_messages{{group="{group}",partition="{partition}",topic="{topic}"}} 0.0\n'


def test_the_load_waits_until_every_group_fetched_from_all_its_partitions():
    from bench.common import all_partitions_fetched

    alerts = "".join(_lag("alerts", "feedback.received.v1", p) for p in range(3))
    survey = _lag("survey", "feedback.received.v1", 0) + _lag("survey", "survey.responses.v1", 0)
    assert not all_partitions_fetched([alerts, survey], partitions=3)  # survey still joining
    assert not all_partitions_fetched([alerts, ""], partitions=3)  # a process not answering yet
    survey = "".join(_lag("survey", t, p) for t in ("feedback.received.v1", "survey.responses.v1") for p in range(3))
    assert all_partitions_fetched([alerts, survey], partitions=3)
    # two replicas of one group share its partitions
    halves = [_lag("alerts", "feedback.received.v1", 0) + _lag("alerts", "feedback.received.v1", 1),
              _lag("alerts", "feedback.received.v1", 2)]
    assert all_partitions_fetched(halves, partitions=3)
