"""Text normalisation, language detection and English tokens.

Shared by the lexicon analysis, the model features, the escalation detector
and training, so that every layer sees the same text.  Pure Python.
"""

from __future__ import annotations

import re
import unicodedata

_CJK = r"\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{_CJK}]+")
_CJK_CHAR = re.compile(f"[{_CJK}]")
_LATIN_WORD = re.compile(r"[a-zA-Z]+")
_URL = re.compile(r"https?://\S+|www\.\S+")
_MENTION = re.compile(r"@\w+")
_EN_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)*|[!?]+|[.,;:]|[\u2639\u263a\U0001F600-\U0001F64F]")
# characters that close a clause (negation / modifier scope ends there)
_ZH_CLAUSE_END = set("，,。.！!？?；;、\n～~…")
_ZH_SENT_END = set("。！!？?\n")
_EN_PUNCT = {".", ",", ";", ":"}
_EN_SENT_END = {".", ";", ":"}
# conjunctions that end a negation's scope: "wasn't included and charged extra"
_EN_SCOPE_END = {"and", "because", "since", "so", "then", "when", "after", "until"}


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    if "http" in text or "www." in text:
        text = _URL.sub(" ", text)
    if "@" in text:
        text = _MENTION.sub(" ", text)
    return text


def detect_lang(text: str) -> str:
    """"zh", "en", "mixed" or "unknown": CJK characters vs Latin words.

    A couple of Latin words inside Chinese (brand or model names: iPhone,
    App) keep the text "zh"; one or two CJK characters inside English keep it
    "en"; more of both is "mixed"."""
    cjk = len(_CJK_CHAR.findall(text))
    latin_words = len(_LATIN_WORD.findall(text))
    if cjk == 0:
        return "en" if latin_words else "unknown"
    if latin_words <= 2:
        return "zh"
    if cjk <= 2:
        return "en"
    return "mixed"


def en_tokens(text: str) -> list[str]:
    return _EN_TOKEN.findall(text.replace("’", "'"))
