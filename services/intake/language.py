"""Language of a feedback text when the channel did not say: a script-ratio
heuristic, good enough to tell Chinese from English (and spot Japanese and
Korean) in microseconds. Mixed zh/en text, common in Chinese feedback
("WiFi 太慢了"), is Chinese when its Han characters carry a fair share.
"""

from __future__ import annotations

import re

# Share of Han characters among letters above which a mixed text counts as Chinese:
# one Han character carries about as much as a whole English word.
_HAN_SHARE_FOR_ZH = 0.15


def _classify(ch: str) -> str | None:
    cp = ord(ch)
    if cp < 0x80:
        return "latin" if ch.isalpha() else None
    if 0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2FA1F or 0xF900 <= cp <= 0xFAFF:
        return "han"
    if 0x3040 <= cp <= 0x30FF or 0x31F0 <= cp <= 0x31FF:
        return "kana"
    if 0xAC00 <= cp <= 0xD7AF or 0x1100 <= cp <= 0x11FF or 0x3130 <= cp <= 0x318F:
        return "hangul"
    if 0xFF21 <= cp <= 0xFF5A:  # full-width Latin letters
        return "latin"
    if ch.isalpha():
        return "other"
    return None


def detect(text: str | None, *, sample: int = 2000) -> str | None:
    """``zh``, ``en``, ``ja`` or ``ko`` for ``text``, or None when it has no letters
    or is written in another script. Only the first ``sample`` characters are looked at."""
    if not text:
        return None
    if text.isascii():  # Latin letters only (the common English case, without a loop per character)
        return "en" if re.search("[A-Za-z]", text[:sample]) else None
    counts = {"latin": 0, "han": 0, "kana": 0, "hangul": 0, "other": 0}
    for ch in text[:sample]:
        kind = _classify(ch)
        if kind is not None:
            counts[kind] += 1
    letters = sum(counts.values())
    if letters == 0:
        return None
    if counts["kana"] and counts["kana"] >= 0.1 * (counts["han"] + counts["kana"]):
        return "ja"
    if counts["hangul"] > counts["han"] and counts["hangul"] >= 0.3 * letters:
        return "ko"
    if counts["han"] and counts["han"] >= _HAN_SHARE_FOR_ZH * letters:
        return "zh"
    if counts["latin"] >= 0.5 * letters:
        return "en"
    return None
