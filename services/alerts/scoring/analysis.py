"""Lexicon analysis: sentiment terms with negation, intensity, contrast and
concessive rules, yielding readable hits (phrases of the text) per text.

Pure Python; the tables come from ``lexicon.py`` and the filtered VADER list.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from importlib import resources

from . import lexicon as lx
from .text import _CJK_RUN, _EN_PUNCT, _EN_SCOPE_END, _ZH_CLAUSE_END, _ZH_SENT_END, en_tokens



@dataclass(slots=True)
class Hit:
    term: str
    value: float          # contribution after negation / modifiers / contrast
    note: str = ""        # "negated", "intensified", "downtoned"
    start: int = -1       # Chinese hits: character span in the normalised text (for cue phrases)
    end: int = -1


@dataclass(slots=True)
class Analysis:
    hits: list[Hit] = field(default_factory=list)
    contrast: list[str] = field(default_factory=list)  # the clause each contrast marker opens, marker included

    @property
    def pos(self) -> float:
        return sum(h.value for h in self.hits if h.value > 0)

    @property
    def neg(self) -> float:
        return -sum(h.value for h in self.hits if h.value < 0)


# ------------------------------------------------------------------ lexicon tables
def _load_vader() -> dict[str, float]:
    try:
        raw = resources.files(__package__).joinpath("data/vader_lexicon_filtered.tsv.gz").read_bytes()
    except FileNotFoundError:
        return {}
    out: dict[str, float] = {}
    for line in gzip.decompress(raw).decode("utf-8").splitlines():
        word, _, score = line.partition("\t")
        if word and score:
            out[word] = float(score)
    return out


class Lexicon:
    """Compiled lookup tables: term -> (kind, value), indexed by first char / token."""

    def __init__(self) -> None:
        zh: dict[str, tuple[str, float]] = {}
        for t, w in lx.ZH_TERMS.items():
            zh[t] = ("T", w)
        zh["好"] = (lx.GOOD_OR_INT, 1.5)
        for t, k in lx.ZH_MODIFIERS.items():
            zh[t] = ("M", k)
        for t, kind in lx.ZH_NEGATORS.items():
            zh[t] = (kind, 0.0)
        for t in lx.ZH_CONCESSIVE:
            zh[t] = (lx.CONCESSIVE, 0.0)
        for t in lx.ZH_CONTRAST:
            zh[t] = (lx.CONTRAST, 0.0)
        self.zh = zh
        first: dict[str, list[int]] = {}
        for t in zh:
            first.setdefault(t[0], []).append(len(t))
        self.zh_first = {c: sorted(set(ls), reverse=True) for c, ls in first.items()}

        en: dict[str, tuple[str, float]] = {}
        for t, w in _load_vader().items():
            if t not in lx.VADER_EXCLUDE and " " not in t:
                en[t] = ("T", round(w * 0.8, 2))
        for t, w in lx.EN_TERMS.items():
            en[t] = ("T", w)
        for t, w in lx.EN_PHRASES.items():
            en[t] = ("T", w)
        en["pretty"] = (lx.GOOD_OR_INT, 1.2)
        for t, k in lx.EN_MODIFIERS.items():
            en[t] = ("M", k)
        for t, kind in lx.EN_NEGATORS.items():
            en[t] = (kind, 0.0)
        for t in lx.EN_CONTRAST:
            en[t] = (lx.CONTRAST, 0.0)
        self.en = en
        efirst: dict[str, int] = {}
        for t in en:
            parts = t.split(" ")
            efirst[parts[0]] = max(efirst.get(parts[0], 1), len(parts))
        self.en_first = efirst


_NEG_FLIP_POS = -0.9     # "not good" ~ -0.9 * good
_NEG_FLIP_NEG = -0.4     # "not bad"  ~ +0.4 * |bad|
_STRONG_NEG = 1.3        # "not good at all", 一点也不好
_BEFORE_CONTRAST = 0.4   # weight of what came before "but" / 但是
_CONCESSIVE_W = 0.5      # weight of the "although" clause itself


def _apply(value: float, mult: float, neg: int) -> tuple[float, str]:
    if neg:
        k = _STRONG_NEG if neg == 2 else 1.0
        if value > 0:
            return value * _NEG_FLIP_POS * k * max(mult, 1.0), "negated"
        return value * _NEG_FLIP_NEG, "negated"
    if mult != 1.0:
        return value * mult, "intensified" if mult > 1 else "downtoned"
    return value, ""


def _zh_clause(text: str, j: int, limit: int = 24) -> str:
    """The clause opened at ``j`` (a contrast marker), up to its end or ``limit`` characters."""
    k = j
    n = min(len(text), j + limit)
    while k < n and (text[k] not in _ZH_CLAUSE_END or k - j < 3):
        k += 1
    return text[j:k].strip(" ，,")


def _en_clause(tokens: list[str], j: int, limit: int = 10) -> str:
    k = j + 1
    while k < len(tokens) and k - j < limit and tokens[k] not in _EN_PUNCT and tokens[k][0] not in "!?":
        k += 1
    return " ".join(tokens[j:k])


def analyse_zh(text: str, lex: Lexicon, an: Analysis) -> None:
    table, first = lex.zh, lex.zh_first
    n = len(text)
    i = 0
    neg = 0
    mult = 1.0
    gap = 0
    pend = -1             # start of the pending negator/modifier span
    concessive = False
    start = len(an.hits)
    while i < n:
        c = text[i]
        lens = first.get(c)
        matched = None
        if lens:
            for ln in lens:
                if i + ln <= n:
                    s = text[i:i + ln]
                    e = table.get(s)
                    if e is not None:
                        matched = (s, e)
                        break
        if matched is None:
            if c in _ZH_CLAUSE_END:
                neg, mult, gap, pend = 0, 1.0, 0, -1
                if concessive and (c in _ZH_SENT_END or c in "，,"):
                    concessive = False
            else:
                gap += 1
                if gap > 1:
                    neg, mult, pend = 0, 1.0, -1
            i += 1
            continue
        s, (kind, val) = matched
        j = i
        i += len(s)
        gap = 0
        if kind == lx.GOOD_OR_INT:
            kind = "T"
            if i < n:
                nxt = first.get(text[i])
                if nxt:
                    for ln in nxt:
                        e2 = table.get(text[i:i + ln])
                        if e2 is not None:
                            if e2[0] == "T" and e2[1] != 0.0:
                                kind, val = "M", 1.5
                            break
        if kind == "T":
            if val == 0.0:
                neg, mult, pend = 0, 1.0, -1
                continue
            v, note = _apply(val, mult, neg)
            if concessive:
                v *= _CONCESSIVE_W
            k = pend if pend >= 0 else j
            an.hits.append(Hit(text[k:i], v, note, k, i))
            neg, mult, pend = 0, 1.0, -1
        elif kind == "M":
            mult *= val
            if pend < 0:
                pend = j
        elif kind == lx.NEG or kind == lx.NEG_STRONG:
            if kind == lx.NEG_STRONG:
                neg = 2
            else:
                neg = 1 if not neg else 0
            if pend < 0:
                pend = j
        elif kind == lx.CONTRAST:
            for h in an.hits[start:]:
                h.value *= _BEFORE_CONTRAST
            an.contrast.append(_zh_clause(text, j))
            concessive = False
            neg, mult, pend = 0, 1.0, -1
        elif kind == lx.CONCESSIVE:
            concessive = True
def analyse_en(tokens: list[str], lex: Lexicon, an: Analysis) -> None:
    table, first = lex.en, lex.en_first
    n = len(tokens)
    i = 0
    neg = 0
    neg_left = 0
    mult = 1.0
    pend = -1
    concessive = False
    start = len(an.hits)
    clause_start = True
    while i < n:
        t = tokens[i]
        maxlen = first.get(t)
        matched = None
        if maxlen:
            for ln in range(min(maxlen, n - i), 0, -1):
                s = t if ln == 1 else " ".join(tokens[i:i + ln])
                e = table.get(s)
                if e is not None:
                    matched = (s, e, ln)
                    break
        if matched is None:
            if t in _EN_PUNCT or t[0] in "!?":
                neg, mult, neg_left, pend = 0, 1.0, 0, -1
                concessive = False
                clause_start = True
            else:
                if neg:
                    neg_left -= 1
                    if neg_left < 0 or t in _EN_SCOPE_END:
                        neg, mult, neg_left, pend = 0, 1.0, 0, -1
                elif mult != 1.0:
                    mult, pend = 1.0, -1
                clause_start = False
            i += 1
            continue
        s, (kind, val), ln = matched
        j = i
        i += ln
        if kind == lx.GOOD_OR_INT:
            kind = "T"
            if i < n:
                e2 = table.get(tokens[i])
                if e2 is not None and e2[0] == "T" and e2[1] != 0.0:
                    kind, val = "M", 1.3
        if kind == "T":
            clause_start = False
            if val == 0.0:
                continue
            if neg and i < n - 1 and tokens[i] == "at" and tokens[i + 1] == "all":
                neg = 2
            v, note = _apply(val, mult, neg)
            if concessive:
                v *= _CONCESSIVE_W
            an.hits.append(Hit(" ".join(tokens[pend if pend >= 0 else j:i]), v, note))
            neg, mult, neg_left, pend = 0, 1.0, 0, -1
            continue
        if kind == "M":
            mult *= val
            if pend < 0:
                pend = j
        elif kind == lx.NEG or kind == lx.NEG_STRONG:
            neg, neg_left = (2 if kind == lx.NEG_STRONG else 1), 3
            if pend < 0:
                pend = j
        elif kind == lx.CONTRAST:
            if s in lx.EN_CONCESSIVE and clause_start:
                concessive = True
            else:
                for h in an.hits[start:]:
                    h.value *= _BEFORE_CONTRAST
                an.contrast.append(_en_clause(tokens, j))
                concessive = False
                if s in ("unfortunately", "sadly"):
                    an.hits.append(Hit(s, -1.0, ""))
            neg, mult, pend = 0, 1.0, -1
        clause_start = False


def analyse(norm: str, lex: Lexicon, tokens: list[str] | None = None) -> Analysis:
    an = Analysis()
    if _CJK_RUN.search(norm):
        analyse_zh(norm, lex, an)
    if tokens is None:
        tokens = en_tokens(norm)
    if tokens:
        analyse_en(tokens, lex, an)
    return an

