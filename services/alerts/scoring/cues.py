"""Cues a manager can read: phrases of the text and named rules, never raw features.

Every cue is one of

* ``escalation:<category>:'<phrase>'``  an escalation rule (legal, regulator,
  media, safety, food_safety, churn) and the phrase that triggered it;
* ``'<phrase>' [negated|intensified|downtoned] ±x.x``  a sentiment phrase of
  the text as the lexicon rules read it (negation, intensity);
* ``contrast: '<clause>'``  the clause after "but" / 但是 that outweighs what
  came before;
* ``rating:<scale>=<value>``  the explicit rating;
* ``model: 0.91 negative``  the model's calibrated P(negative), one line.

A phrase is never a stopword or a function character alone (不, 没, 但, 的,
十, "and", "my"): Chinese single-character terms are widened to the words
around them in the same clause (差 -> 质量差), and anything that would still
read as a function word is left out of the cues (it still counts in the score).
"""

from __future__ import annotations

from .analysis import Analysis, Hit
from .text import _ZH_CLAUSE_END

# Chinese characters that carry grammar, numbers or pronouns rather than an
# opinion: a cue made only of these would explain nothing.
ZH_FUNCTION_CHARS = frozenset(
    "不没无未别非但却而且并只才再又也都就还很太更最挺蛮极超是在有了着过的地得之其与和及或跟同被把让给对向从"
    "于为所因由此这那哪谁什么怎样个些每各某吗呢吧啊呀哦嗯哈啦嘛呗么我你您他她它们咱自己"
    "一二三四五六七八九十百千万亿零两几半第来去上下里外前后中"
)
# English function words (hand-written list): never a cue on their own.
EN_STOPWORDS = frozenset("""
a an the and or but nor so yet if then than that this these those there here of to in on at by for from with
without about as into onto over under after before since until while though although because not no never
nothing none nobody neither cannot can't don't doesn't didn't isn't wasn't aren't weren't won't wouldn't
couldn't shouldn't haven't hasn't hadn't i me my mine we us our you your he him his she her it its they them
their is am are was were be been being do does did have has had will would can could should may might must
shall just very really too also still even only much more most some any all each every other such own same
what which who whom whose when where why how again once out up down off one two three four five six seven
eight nine ten hour hours minute minutes day days time times get got go went make made take took
""".split())


def is_function_phrase(phrase: str) -> bool:
    """True for a phrase that alone says nothing to a reader: empty, only
    stopwords, or only Chinese function characters / digits / punctuation."""
    p = phrase.strip().strip("'\"")
    if p.isascii():
        return not any(ch.isalpha() for ch in p) or all(w in EN_STOPWORDS for w in p.split())
    return not any(ch.isalpha() and ch not in ZH_FUNCTION_CHARS for ch in p)


def _widen_zh(norm: str, hit: Hit) -> str:
    """A one-character Chinese term grows to the two characters before it in its
    clause (质量差, 送得快), or after it at a clause start (差到家)."""
    if hit.start < 0 or hit.end - hit.start >= 2:
        return hit.term
    s, e = hit.start, hit.end
    while s > 0 and hit.start - s < 2 and norm[s - 1] not in _ZH_CLAUSE_END and not norm[s - 1].isspace():
        s -= 1
    if s == hit.start:
        while e < len(norm) and e - hit.end < 2 and norm[e] not in _ZH_CLAUSE_END and not norm[e].isspace():
            e += 1
    return norm[s:e]


def phrase_cues(norm: str, an: Analysis, limit: int = 6) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()
    for h in sorted(an.hits, key=lambda h: -abs(h.value)):
        if len(out) >= limit or abs(h.value) < 0.3:
            break
        phrase = _widen_zh(norm, h)
        if phrase in seen or is_function_phrase(phrase):
            continue
        seen.add(phrase)
        note = f" {h.note}" if h.note else ""
        out.append(f"'{phrase}'{note} {h.value:+.1f}")
    for clause in an.contrast[:2]:
        if not is_function_phrase(clause):
            out.append(f"contrast: '{clause}'")
    return out


def model_cue(p_negative: float) -> str:
    return f"model: {p_negative:.2f} negative"
