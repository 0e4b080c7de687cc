"""The kiosk page: a self-contained, offline-capable feedback terminal.

Static HTML/JS/CSS shipped as package data (no CDN); served by
``services.intake.api.kiosk``. See ``services/intake/README.md`` (Kiosk).
"""

from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
