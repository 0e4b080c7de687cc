"""Labelled JSONL for ``keymoment scoring train``: managers' verdicts and any other labelled text.

One JSON object per line (UTF-8)::

    {"text": "前台等了四十分钟没人理", "language": "zh", "label": "negative",
     "source": "tenant-42/verdicts", "industry": "hotel"}

* ``text`` (required): the feedback text as scored.
* ``label`` (required): ``"negative"`` (the alert was right / the text is a
  negative moment) or ``"not_negative"`` (false alarm / not negative).
  The development files' form ``"negative": true|false`` is accepted too.
* ``language`` (optional, ``lang`` accepted): ``zh``, ``en``, ``zh-CN`` ...;
  detected from the text when absent.
* ``source`` (optional): where the rows come from; each source gets the same
  total weight in training, so one big export does not drown the rest.
* ``industry`` (optional, ``category`` accepted): the domain; an n-gram must
  occur in several domains (or be backed by the base model) to become a weight.

Unknown keys are ignored (an export may carry ids and timestamps).  A line
that is not valid raises ``ValueError`` naming the file and line: a training
set with silently dropped rows would mislead the evaluation.
"""

from __future__ import annotations

import json
from pathlib import Path

from .text import detect_lang, normalise
from .train import Example

LABELS = {"negative": True, "not_negative": False}


def parse_line(obj: object, default_source: str = "verdicts") -> Example:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    text = obj.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("'text' must be a non-empty string")
    if "label" in obj:
        label = obj["label"]
        if label not in LABELS:
            raise ValueError(f"'label' must be one of {sorted(LABELS)}, got {label!r}")
        negative = LABELS[label]
    elif isinstance(obj.get("negative"), bool):
        negative = obj["negative"]
    else:
        raise ValueError("a row needs 'label' (negative / not_negative) or 'negative' (true / false)")
    lang = obj.get("language") or obj.get("lang")
    if lang is not None and not isinstance(lang, str):
        raise ValueError("'language' must be a string")
    lang = (lang or detect_lang(normalise(text))).lower()
    lang = "zh" if lang.startswith("zh") else "en" if lang.startswith("en") else lang
    source = obj.get("source") or default_source
    industry = obj.get("industry") or obj.get("category") or ""
    if not isinstance(source, str) or not isinstance(industry, str):
        raise ValueError("'source' and 'industry' must be strings")
    group = f"{source}/{industry}" if industry else source
    return Example(text=text, negative=negative, lang=lang, source=source, group=group)


def read_jsonl(path: str | Path) -> list[Example]:
    """All rows of a labelled JSONL file; blank lines are skipped."""
    p = Path(path)
    out: list[Example] = []
    with p.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                out.append(parse_line(json.loads(line), default_source=p.stem))
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                raise ValueError(f"{p}:{n}: {exc}") from exc
    return out
