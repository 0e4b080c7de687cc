"""Model features (sparse n-grams + dense lexicon features) of a normalised text.

Shared by the runtime scorer and by training (``train.py``) so that both see
exactly the same features.  Pure Python, no third-party deps.  The text and
analysis helpers are re-exported here for older imports.
"""

from __future__ import annotations

import math

from . import lexicon as lx
from .analysis import Analysis, Hit, Lexicon, analyse, analyse_en, analyse_zh
from .text import _CJK_RUN, _EN_PUNCT, detect_lang, en_tokens, normalise

__all__ = ["LEX_FEATURES", "Analysis", "Hit", "Lexicon", "analyse", "analyse_en", "analyse_zh", "detect_lang",
           "en_tokens", "lexicon_features", "ngrams", "normalise"]


# ------------------------------------------------------------------ model features
def ngrams(norm: str, tokens: list[str]) -> set[str]:
    """Sparse binary features: Chinese char 1-3 grams, English word 1-2 grams
    with negation scope marking ("!good" after "not")."""
    feats: set[str] = set()
    add = feats.add
    for run in _CJK_RUN.findall(norm):
        m = len(run)
        for j in range(m):
            add(run[j])
            if j + 1 < m:
                add(run[j:j + 2])
                if j + 2 < m:
                    add(run[j:j + 3])
    if tokens:
        prev = "<s>"
        negl = 0
        negs = lx.EN_NEGATORS
        for t in tokens:
            if t in _EN_PUNCT:
                prev, negl = "<s>", 0
                continue
            if t[0] in "!?":
                add(t[0])
                prev, negl = "<s>", 0
                continue
            if t.isdigit():
                t = "<num>"
            w = "!" + t if negl > 0 else t
            if negl > 0:
                negl -= 1
            if t in negs:
                negl = 3
            else:
                add("w" + w)
            add("b" + prev + "_" + w)
            prev = w
    return feats


LEX_FEATURES = ("L:pos", "L:neg", "L:score", "L:negated_pos", "L:contrast", "L:last_clause")


def lexicon_features(an: Analysis) -> dict[str, float]:
    pos, neg = an.pos, an.neg
    negated_pos = sum(1 for h in an.hits if h.note == "negated" and h.value < 0)
    last = an.hits[-1].value if an.hits else 0.0
    return {
        "L:pos": math.tanh(pos / 3.0),
        "L:neg": math.tanh(neg / 3.0),
        "L:score": math.tanh((pos - neg) / 3.0),
        "L:negated_pos": min(negated_pos, 3) / 3.0,
        "L:contrast": 1.0 if an.contrast else 0.0,
        "L:last_clause": math.tanh(last / 2.0),
    }
