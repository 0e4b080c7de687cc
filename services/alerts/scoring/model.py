"""The scoring model file: sparse logistic regression + per-language calibration.

File format (gzip JSON, written by ``train.py``)::

    {"format": 2,
     "bias": float,
     "weights": {ngram: weight, ...},          # L2-normalised binary n-gram features
     "lex_weights": {"L:pos": w, ...},          # dense lexicon features (features.LEX_FEATURES)
     "calibration": {"default": {"a": 1, "b": 0}, "zh": {...}, "en": {...}},
     "threshold": 0.5,                          # default text-only alert threshold on P(negative)
     "meta": {...}}                             # data, licence, parameters (PROVENANCE.md)

``P(negative) = sigmoid(a_lang * z + b_lang)`` with ``z`` the raw score.
Files of format 1 (one ``calibration: {a, b}``) load unchanged.
"""

from __future__ import annotations

import gzip
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

from .features import LEX_FEATURES

MODEL_RESOURCE = "data/model.json.gz"
DEFAULT_ALERT_THRESHOLD = 0.5


class LinearModel:
    """Sparse logistic regression: n-gram weights (L2-normalised binary
    features) + dense lexicon-feature weights + Platt calibration per language."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.bias: float = float(data["bias"])
        self.weights: dict[str, float] = data["weights"]
        self.lex_weights: dict[str, float] = {k: float(data["lex_weights"].get(k, 0.0)) for k in LEX_FEATURES}
        cal = data.get("calibration") or {}
        if "a" in cal:  # format 1: one calibration for every language
            cal = {"default": cal}
        self.calibration: dict[str, tuple[float, float]] = {
            lang: (float(c.get("a", 1.0)), float(c.get("b", 0.0))) for lang, c in cal.items()}
        self.calibration.setdefault("default", (1.0, 0.0))
        self.threshold: float = float(data.get("threshold", DEFAULT_ALERT_THRESHOLD))
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"model threshold {self.threshold} must lie strictly between 0 and 1")
        self.meta: dict[str, Any] = data.get("meta", {})

    @classmethod
    def from_file(cls, path: str | Path | None = None) -> LinearModel:
        if path is None:
            raw = resources.files(__package__).joinpath(MODEL_RESOURCE).read_bytes()
        else:
            raw = Path(path).read_bytes()
        try:
            return cls(json.loads(gzip.decompress(raw)))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a scoring model file: {path or MODEL_RESOURCE} ({exc})") from exc

    def to_dict(self) -> dict[str, Any]:
        return {"format": 2, "bias": self.bias, "weights": self.weights, "lex_weights": self.lex_weights,
                "calibration": {k: {"a": a, "b": b} for k, (a, b) in sorted(self.calibration.items())},
                "threshold": self.threshold, "meta": self.meta}

    def raw(self, feats: set[str], lexf: dict[str, float]) -> float:
        """Uncalibrated score ``z``."""
        w = self.weights
        s = sum(map(w.__getitem__, feats & w.keys()))  # the intersection runs in C
        z = self.bias + (s / math.sqrt(len(feats)) if feats else 0.0)
        lw = self.lex_weights
        for k, v in lexf.items():
            z += lw[k] * v
        return z

    def calibrated(self, z: float, lang: str) -> float:
        a, b = self.calibration.get(lang) or self.calibration["default"]
        return a * z + b

    def p_negative(self, feats: set[str], lexf: dict[str, float], lang: str) -> float:
        return sigmoid(self.calibrated(self.raw(feats, lexf), lang))


def sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)
