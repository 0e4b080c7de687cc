"""What the ``keymoment`` subcommands that call a running service share."""

from __future__ import annotations

import os
from pathlib import Path


def credential(explicit: str | None, *, env: str, dev_file: str) -> str | None:
    """A credential from the command line, else the environment variable ``env``, else the file
    ``make dev`` writes (``./var/<dev_file>``); None when there is none."""
    if explicit:
        return explicit
    if value := os.environ.get(env):
        return value
    path = Path("var") / dev_file
    return path.read_text().strip() if path.is_file() else None
