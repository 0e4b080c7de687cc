"""Fixtures of the use-case tests: a fresh :class:`World` per test (see ``world.py``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from services.alerts.scoring import Scorer
from tests.unit.alerts.world import ROUTES, World, make_settings


@pytest.fixture(scope="session")
def scorer() -> Scorer:
    return Scorer.load()


@pytest.fixture
def make_world(tmp_path: Path, scorer: Scorer) -> Callable[..., World]:
    """A world whose settings take ``overrides``."""
    routes = tmp_path / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    return lambda **overrides: World(make_settings(routes, **overrides), scorer)


@pytest.fixture
def world(make_world: Callable[..., World]) -> World:
    return make_world()
