"""Benchmarks leave nothing behind (hundreds of MB a run) unless asked to, or unless the run failed."""

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
