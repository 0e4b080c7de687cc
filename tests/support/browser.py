"""Headless Chromium for the browser tests (playwright driving the Debian binary)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture
def chromium() -> str:
    """The Chromium binary; the test is skipped when it or playwright is missing."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed ({CHROMIUM}); `apt-get install -y chromium` (make test does)")
    pytest.importorskip("playwright.async_api", reason="the playwright package is not installed")
    return CHROMIUM
