"""The seven moment-of-truth faces (-3..+3), drawn as SVG exactly as the kiosk draws them.

The kiosk (``services/intake/kiosk/static/kiosk.js``, ``faceSvg``) draws each face in
the browser; survey renders the same drawing on the server, inline in the page (no
JavaScript, no emoji: emoji faces render as empty boxes on some devices).
``tests/unit/survey/test_faces.py`` runs the kiosk's function with Node.js and
compares, so the two can never drift apart.
"""

from __future__ import annotations

import functools

# The kiosk's COLOURS: red (-3) to green (+3).
COLOURS = {-3: "#c62828", -2: "#e4572e", -1: "#f29e4c", 0: "#c9b23a", 1: "#9ccc65", 2: "#5cb85c", 3: "#2e7d32"}
INK = "#1d2330"

NAMES: dict[int, dict[str, str]] = {
    -3: {"zh-CN": "非常糟糕", "en": "Terrible"},
    -2: {"zh-CN": "很差", "en": "Very poor"},
    -1: {"zh-CN": "较差", "en": "Poor"},
    0: {"zh-CN": "一般", "en": "Neutral"},
    1: {"zh-CN": "较好", "en": "Good"},
    2: {"zh-CN": "很好", "en": "Very good"},
    3: {"zh-CN": "非常出色", "en": "Excellent"},
}


def _js_number(value: float) -> str:
    """A number as JavaScript's template literals print it (95.5, 82, -13.5)."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@functools.cache
def face_svg(value: int) -> str:
    """The face for MOT ``value`` (-3..+3): a coloured disc, eyes, brows when -2 or worse, and a
    mouth curving down for negative and up for positive moments."""
    if value not in COLOURS:
        raise ValueError(f"a MOT face is -3..3, got {value!r}")
    curve = value * 9
    brow = (f'<path d="M30 32 L44 38 M90 32 L76 38" stroke="{INK}" stroke-width="5" stroke-linecap="round"/>'
            if value <= -2 else "")
    edge, middle = _js_number(82 - curve / 2), _js_number(82 + curve)
    return (
        f'<svg viewBox="0 0 120 120" aria-hidden="true"><circle cx="60" cy="60" r="56" fill="{COLOURS[value]}"/>'
        f'{brow}<circle cx="42" cy="50" r="7" fill="{INK}"/><circle cx="78" cy="50" r="7" fill="{INK}"/>'
        f'<path d="M34 {edge} Q60 {middle} 86 {edge}" stroke="{INK}" stroke-width="6" fill="none" '
        f'stroke-linecap="round"/></svg>'
    )
