"""Cues a manager can read: phrases of the text or named rules, never a stopword,
a function character or a raw model feature; the model is one line."""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path

import pytest

from services.alerts.scoring import Scorer
from services.alerts.scoring.cues import EN_STOPWORDS, ZH_FUNCTION_CHARS, is_function_phrase
from services.alerts.scoring.text import en_tokens, normalise

DATA = Path(__file__).parent / "data"
EVAL_DIR = Path(os.environ.get("KEYMOMENT_EVAL_DIR") or Path(__file__).resolve().parents[3].parent / "shared" / "eval")
PHRASE = re.compile(r"^'(?P<phrase>.+)'(?: (?:negated|intensified|downtoned))? [+-]\d+\.\d$")
MODEL = re.compile(r"^model: \d\.\d\d negative$")
CONTRAST = re.compile(r"^contrast: '(?P<phrase>.+)'$")
ESCALATION = re.compile(r"^escalation:(legal|regulator|media|safety|food_safety|churn):'.+'$")


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return Scorer.load()


def _case_texts() -> list[str]:
    texts = []
    for name in ("cross_domain_cases.jsonl", "escalation_cases.jsonl"):
        texts += [json.loads(x)["text"] for x in (DATA / name).read_text(encoding="utf-8").splitlines() if x.strip()]
    return texts


def sampled_texts(n: int = 1000) -> list[str]:
    """1,000 texts: the shipped case files as they are, then deterministic
    pairings of their sentences (longer, mixed feedback)."""
    texts = _case_texts()
    rng = random.Random(20261130)
    out = list(texts)
    while len(out) < n:
        a, b = rng.sample(texts, 2)
        sep = "，" if re.search(r"[\u4e00-\u9fff]", a) else " "
        out.append(a.rstrip("。.!！") + sep + b)
    return out[:n]


def assert_readable(text: str, cues: list[str]) -> None:
    norm = normalise(text)
    model_lines = [c for c in cues if c.startswith("model")]
    assert len(model_lines) == 1 and MODEL.match(model_lines[0]), (text, cues)
    for cue in cues:
        assert not cue.startswith("model:'"), (text, cue)  # no raw model feature
        if MODEL.match(cue) or ESCALATION.match(cue) or cue.startswith("rating:"):
            continue
        m = PHRASE.match(cue) or CONTRAST.match(cue)
        assert m, f"cue {cue!r} is neither a phrase nor a named rule ({text!r})"
        phrase = m["phrase"]
        words = " " + " ".join(en_tokens(norm)) + " "
        assert phrase in norm or f" {phrase} " in words, f"cue {cue!r} is not a phrase of {text!r}"
        assert not is_function_phrase(phrase), (text, cue)
        assert phrase not in EN_STOPWORDS and phrase not in ZH_FUNCTION_CHARS, (text, cue)


def test_function_phrases() -> None:
    for p in ("不", "没", "但", "的", "十", "不是", "但是", "and", "my", "of the", "12", "！"):
        assert is_function_phrase(p), p
    for p in ("不错", "质量差", "rude", "not good", "还可以", "很好", "太慢"):
        assert not is_function_phrase(p), p


def test_thousand_sampled_texts_have_readable_cues(scorer: Scorer) -> None:
    texts = sampled_texts()
    assert len(texts) == 1000 and len(set(texts)) > 900
    phrases = 0
    for t in texts:
        cues = scorer.score(t).cues
        assert_readable(t, cues)
        phrases += sum(1 for c in cues if c.startswith("'"))
    assert phrases >= 800  # the cues do explain: most texts show at least one phrase


def test_development_rows_have_readable_cues(scorer: Scorer) -> None:
    files = [EVAL_DIR / "negativity-dev.jsonl", EVAL_DIR / "negativity-dev-industries.jsonl"]
    if not all(f.is_file() for f in files):
        pytest.skip(f"development files not in {EVAL_DIR} (never copied into the repo)")
    rows = [line for f in files for line in f.read_text(encoding="utf-8").splitlines()]
    for line in random.Random(7).sample(rows, 1000):
        text = json.loads(line)["text"]
        assert_readable(text, scorer.score(text).cues)


def test_the_examples_of_the_issue(scorer: Scorer) -> None:
    r = scorer.score("不错")  # the model once showed model:'错' here
    assert r.cues[0].startswith("'不错' +") and not any("'错'" in c for c in r.cues)
    r = scorer.score("My flight and my bag were both fine and the crew was lovely")
    assert not any(c.startswith(("'and'", "'my'")) for c in r.cues)
    r = scorer.score("等了十分钟，但是服务很好")
    assert not any(c.startswith(("'十'", "'但'", "'的'")) for c in r.cues)
    assert any(c.startswith("contrast: '但是") for c in r.cues)
    r = scorer.score("服务差")
    assert any(c.startswith("'服务差' -") for c in r.cues)  # a one-character term shows its words
