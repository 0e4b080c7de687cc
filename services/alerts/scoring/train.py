"""Training of the scoring model (numpy + scipy; training only, never at scoring time).

One trainer for three uses: the shipped model (``build_model.py``), the
leave-one-source-out benchmark (``bench/scoring/run.py``) and
``keymoment scoring train`` (managers' verdicts, ``verdicts.py``).

The model is a logistic regression over L2-normalised binary n-grams plus the
dense lexicon features, fitted by L-BFGS on a source-balanced log loss with an
L2 penalty *centred on a prior model* (``base``): with a base model, a few
hundred verdicts move the weights they have evidence for and leave the rest
where the base had them; without one, the model is built from the given rows
only.  Calibration is Platt scaling per language on rows kept out of the fit.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any, Iterable

from .features import LEX_FEATURES, Lexicon, analyse, en_tokens, lexicon_features, ngrams, normalise
from .text import detect_lang

LEX_REG = 1.0 / 16   # lexicon features are regularised 16x less than n-grams (few, general, hand-written)


@dataclass(frozen=True, slots=True)
class Example:
    """One labelled text. ``source`` groups rows for balancing and for the
    min-groups rule (a category-bound n-gram is not sentiment)."""

    text: str
    negative: bool
    lang: str
    source: str = "verdicts"
    group: str = ""

    @property
    def domain(self) -> str:
        return self.group or self.source


@dataclass(slots=True)
class Featurised:
    ngrams: list[set[str]]
    lex: list[dict[str, float]]
    langs: list[str]


def text_bucket(text: str) -> int:
    """Deterministic 0..9 bucket of a text (same text -> same bucket, no seed)."""
    return hashlib.md5(text.encode("utf-8")).digest()[0] % 10


def featurise(examples: Iterable[Example], lexicon: Lexicon | None = None) -> Featurised:
    lex = lexicon or Lexicon()
    out = Featurised([], [], [])
    for ex in examples:
        norm = normalise(ex.text[:20_000])
        tokens = en_tokens(norm)
        out.ngrams.append(ngrams(norm, tokens))
        out.lex.append(lexicon_features(analyse(norm, lex, tokens)))
        out.langs.append(detect_lang(norm))
    return out


def balanced_weights(examples: list[Example], idx: list[int]) -> list[float]:
    """Each source the same total weight, classes balanced within a source
    (a source with one class gets half a source's weight); mean weight 1."""
    per = Counter((examples[i].source, examples[i].negative) for i in idx)
    n_src = len({examples[i].source for i in idx})
    w = [1.0 / (n_src * 2 * per[(examples[i].source, examples[i].negative)]) for i in idx]
    k = len(idx) / math.fsum(w) if w else 1.0
    return [x * k for x in w]


def select_vocab(examples: list[Example], feats: Featurised, idx: list[int], *, min_df: int, min_groups: int,
                 keep: Iterable[str] = ()) -> list[str]:
    """N-grams seen in at least ``min_df`` rows and ``min_groups`` domains
    (fewer when the data has fewer domains), plus ``keep`` (the base model's)."""
    df: Counter[str] = Counter()
    groups: dict[str, set[str]] = defaultdict(set)
    for i in idx:
        fs = feats.ngrams[i]
        df.update(fs)
        d = examples[i].domain
        for f in fs:
            gs = groups[f]
            if len(gs) < min_groups:
                gs.add(d)
    n_domains = len({examples[i].domain for i in idx})
    need = min(min_groups, max(1, n_domains - 1))
    vocab = {f for f, c in df.items() if c >= min_df and len(groups[f]) >= need}
    vocab.update(keep)
    return sorted(vocab, key=lambda f: (-df[f], f))  # ties by name: set order varies with PYTHONHASHSEED


def fit(examples: list[Example], feats: Featurised, idx: list[int], *, C: float = 1.0, min_df: int = 3,
        min_groups: int = 3, base: dict[str, Any] | None = None, prior_strength: float = 1.0,
        prune: float = 0.02, max_iter: int = 300) -> dict[str, Any]:
    """Fit on rows ``idx``; returns an uncalibrated model dict (format 2).

    ``base``: a model dict whose weights centre the L2 penalty (fine-tuning).
    ``prior_strength`` scales that penalty relative to ``1 / C``."""
    import numpy as np
    from scipy.optimize import minimize
    from scipy.sparse import csr_matrix

    base_w: dict[str, float] = dict(base["weights"]) if base else {}
    vocab = select_vocab(examples, feats, idx, min_df=min_df, min_groups=min_groups, keep=base_w)
    col = {f: j for j, f in enumerate(vocab)}
    nv, nl = len(vocab), len(LEX_FEATURES)
    data: list[float] = []
    ind: list[int] = []
    ptr = [0]
    for i in idx:
        fs = feats.ngrams[i]
        norm = 1.0 / math.sqrt(len(fs)) if fs else 0.0
        cols = sorted(col[f] for f in fs if f in col)
        ind.extend(cols)
        data.extend([norm] * len(cols))
        lexf = feats.lex[i]
        for j, name in enumerate(LEX_FEATURES):
            if lexf[name]:
                ind.append(nv + j)
                data.append(lexf[name])
        ptr.append(len(ind))
    X = csr_matrix((np.array(data), np.array(ind, dtype=np.int64), np.array(ptr, dtype=np.int64)),
                   shape=(len(idx), nv + nl))
    Xt = X.T.tocsr()
    y = np.array([1.0 if examples[i].negative else 0.0 for i in idx])
    sw = np.array(balanced_weights(examples, idx))
    reg = np.full(nv + nl + 1, 1.0 / C)
    reg[nv:nv + nl] = LEX_REG / C
    reg[-1] = 0.0  # bias
    prior = np.zeros(nv + nl + 1)
    if base:
        reg[:-1] *= prior_strength
        for f, j in col.items():
            prior[j] = base_w.get(f, 0.0)
        for j, name in enumerate(LEX_FEATURES):
            prior[nv + j] = float(base["lex_weights"].get(name, 0.0))
        prior[-1] = float(base["bias"])

    def objective(p: Any) -> tuple[float, Any]:
        z = X @ p[:-1] + p[-1]
        loss = float(sw @ np.logaddexp(0.0, np.where(y > 0, -z, z)))
        g = sw * (0.5 * (1.0 + np.tanh(0.5 * z)) - y)   # sigmoid(z) - y, overflow-free
        d = p - prior
        grad = np.empty_like(p)
        grad[:-1] = Xt @ g
        grad[-1] = g.sum()
        grad += reg * d
        return loss + 0.5 * float(reg @ (d * d)), grad

    res = minimize(objective, prior.copy(), jac=True, method="L-BFGS-B",
                   options={"maxiter": max_iter, "ftol": 1e-9, "gtol": 1e-6})
    p = res.x
    weights = {f: round(float(p[j]), 3) for f, j in col.items() if abs(p[j]) >= prune}
    lex_w = {name: round(float(p[nv + j]), 4) for j, name in enumerate(LEX_FEATURES)}
    return {"format": 2, "bias": round(float(p[-1]), 4), "weights": weights, "lex_weights": lex_w,
            "calibration": {"default": {"a": 1.0, "b": 0.0}}, "threshold": 0.5,
            "meta": {"fit": {"iterations": int(res.nit), "converged": bool(res.success), "n_weights": len(weights)}}}


def raw_scores(model: dict[str, Any], feats: Featurised, idx: list[int]) -> list[float]:
    w, lw, b = model["weights"], model["lex_weights"], model["bias"]
    out = []
    for i in idx:
        fs = feats.ngrams[i]
        norm = 1.0 / math.sqrt(len(fs)) if fs else 0.0
        z = b + norm * math.fsum(w.get(f, 0.0) for f in fs)  # fsum: independent of set order
        out.append(z + math.fsum(lw.get(k, 0.0) * v for k, v in feats.lex[i].items()))
    return out


def _platt(z: list[float], y: list[float], sw: list[float]) -> tuple[float, float]:
    import numpy as np
    from scipy.optimize import minimize

    Z, Y, W = np.array(z), np.array(y), np.array(sw)

    def f(p: Any) -> tuple[float, Any]:
        t = p[0] * Z + p[1]
        g = W * (0.5 * (1.0 + np.tanh(0.5 * t)) - Y)
        loss = float(W @ np.logaddexp(0.0, np.where(Y > 0, -t, t))) + 0.5e-2 * float(p @ p)
        return loss, np.array([g @ Z, g.sum()]) + 1e-2 * p

    a, b = minimize(f, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B").x
    return round(float(a), 4), round(float(b), 4)


PRECISION_TARGETS = (0.85, 0.90, 0.95)


def calibrate(model: dict[str, Any], examples: list[Example], feats: Featurised, idx: list[int],
              min_rows: int = 300) -> None:
    """Platt scaling per language on rows ``idx`` (balanced like training);
    a language with fewer than ``min_rows`` rows uses the pooled fit.

    The default alert threshold stays 0.5 (calibrated P with source-balanced
    classes); ``meta.precision_thresholds`` records, for routing rules that
    want fewer false alarms, the lowest P(negative) at which the
    source-balanced precision on these rows reaches 0.85 / 0.90 / 0.95
    (in-domain: on industries the model never saw precision is lower)."""
    z = raw_scores(model, feats, idx)
    y = [1.0 if examples[i].negative else 0.0 for i in idx]
    sw = balanced_weights(examples, idx)
    cal = {"default": dict(zip("ab", _platt(z, y, sw)))}
    for lang in ("zh", "en"):
        k = [n for n, i in enumerate(idx) if feats.langs[i] == lang]
        if len(k) >= min_rows and len({y[n] for n in k}) == 2:
            cal[lang] = dict(zip("ab", _platt([z[n] for n in k], [y[n] for n in k], [sw[n] for n in k])))
    model["calibration"] = cal
    probs = []
    for n, i in enumerate(idx):
        c = cal.get(feats.langs[i], cal["default"])
        t = c["a"] * z[n] + c["b"]
        probs.append(1.0 / (1.0 + math.exp(-t)) if t > -30 else 0.0)
    found: dict[str, float] = {}
    for step in range(50, 100):
        thr = step / 100
        tp = math.fsum(w for p, t, w in zip(probs, y, sw) if p >= thr and t)
        fp = math.fsum(w for p, t, w in zip(probs, y, sw) if p >= thr and not t)
        for target in PRECISION_TARGETS:
            if f"{target:.2f}" not in found and tp + fp and tp / (tp + fp) >= target:
                found[f"{target:.2f}"] = thr
    model["threshold"] = 0.5
    model.setdefault("meta", {})["precision_thresholds"] = found
