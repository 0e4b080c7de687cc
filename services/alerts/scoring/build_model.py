"""Rebuild the shipped scoring model from the labelled development file.

    .venv/bin/pip install numpy scikit-learn vaderSentiment   # build-time only
    .venv/bin/python -m services.alerts.scoring.build_model /work/shared/eval/negativity-dev.jsonl

Writes ``data/model.json.gz`` (pruned logistic-regression weights + Platt
calibration + metadata) and ``data/vader_lexicon_filtered.tsv.gz`` (from the
installed vaderSentiment package, MIT).  Rows whose text hashes into buckets
0-1 of 10 are *never* used for training or calibration: they are the held-out
evaluation rows used by ``bench/scoring/run.py``.  Bucket 2 is used for
calibration, buckets 3-9 for training.

Generalisation choices (the product is judged on other industries):
* Chinese n-grams are kept only if they occur in at least ``--min-groups``
  distinct domains (waimai + the nine shopping categories), so words tied to
  one product category (e.g. a fruit name) do not become sentiment cues;
* the n-gram vector is L2-normalised, so long texts do not saturate the
  model and the lexicon features keep their say;
* lexicon features are scaled up before L2-regularised training, i.e. they
  are regularised less than the thousands of n-grams;
* each source gets the same total weight and classes are balanced within a
  source, so the model's prior is neutral rather than "airline tweets are
  63 % negative".
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
LEX_SCALE = 4.0


def text_bucket(text: str) -> int:
    """Deterministic 0..9 bucket of a text (same text -> same bucket)."""
    return hashlib.md5(text.encode("utf-8")).digest()[0] % 10


def export_vader(dest: Path = DATA / "vader_lexicon_filtered.tsv.gz") -> int:
    """Copy single-word VADER entries (minus our exclusions) into the package."""
    try:
        import vaderSentiment  # type: ignore[import-untyped]
    except ImportError:
        print("vaderSentiment not installed; keeping existing", dest, file=sys.stderr)
        return 0
    from .lexicon import VADER_EXCLUDE

    src = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")
    rows = []
    for line in src.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) < 2 or " " in parts[0] or parts[0] in VADER_EXCLUDE:
            continue
        rows.append(f"{parts[0]}\t{float(parts[1]):.1f}")
    _write_gz(dest, ("\n".join(rows) + "\n").encode("utf-8"))
    return len(rows)


def _write_gz(dest: Path, raw: bytes) -> None:
    """Reproducible gzip: no file name and no timestamp in the header, so the
    same content always gives the same bytes."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as fh:
        fh.write(raw)


def load_rows(path: str) -> list[dict[str, Any]]:
    rows = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            d["group"] = d["source"] + ("/" + d["category"] if d.get("category") else "")
            rows.append(d)
    return rows


def featurise(rows: list[dict[str, Any]]) -> list[tuple[set[str], dict[str, float]]]:
    from .features import Lexicon, analyse, en_tokens, lexicon_features, ngrams, normalise

    lex = Lexicon()
    out = []
    for r in rows:
        norm = normalise(r["text"][:20_000])
        tokens = en_tokens(norm)
        an = analyse(norm, lex, tokens)
        out.append((ngrams(norm, tokens), lexicon_features(an)))
    return out


def train(rows: list[dict[str, Any]], feats: list[tuple[set[str], dict[str, float]]], idx: list[int], *,
          C: float = 1.0, min_df: int = 3, min_groups: int = 4, max_features: int = 120_000,
          prune: float = 0.02, en_scale: float = 1.0) -> dict[str, Any]:
    """Fit the logistic regression on rows ``idx``; returns the model dict."""
    import numpy as np
    from scipy.sparse import csr_matrix
    from sklearn.linear_model import LogisticRegression

    from .features import LEX_FEATURES

    df: Counter[str] = Counter()
    groups: dict[str, set[str]] = defaultdict(set)
    for i in idx:
        fs = feats[i][0]
        df.update(fs)
        g = rows[i]["group"]
        for f in fs:
            if f[0] not in "wb!?":
                gs = groups[f]
                if len(gs) < min_groups:
                    gs.add(g)
    n_zh_groups = len({rows[i]["group"] for i in idx if rows[i]["lang"] == "zh"})
    need = min(min_groups, max(1, n_zh_groups - 1))
    vocab = [f for f, c in df.items() if c >= min_df and (f[0] in "wb!?" or len(groups[f]) >= need)]
    vocab.sort(key=lambda f: (-df[f], f))  # ties by name: set order varies with PYTHONHASHSEED
    vocab = vocab[:max_features]
    col = {f: j for j, f in enumerate(vocab)}
    nl = len(LEX_FEATURES)
    data, ind, ptr = [], [], [0]
    y = np.zeros(len(idx))
    sw = np.zeros(len(idx))
    per_src = Counter((rows[i]["source"], rows[i]["negative"]) for i in idx)
    sources = {rows[i]["source"] for i in idx}
    for k, i in enumerate(idx):
        fs, lexf = feats[i]
        norm = 1.0 / math.sqrt(len(fs)) if fs else 0.0
        for j, f in sorted((col[f], f) for f in fs if f in col):  # sorted: reproducible float sums
            ind.append(j)
            data.append(norm * en_scale if f[0] in "wb" else norm)
        for j, name in enumerate(LEX_FEATURES):
            v = lexf[name]
            if v:
                ind.append(len(vocab) + j)
                data.append(v * LEX_SCALE)
        ptr.append(len(ind))
        r = rows[i]
        y[k] = 1.0 if r["negative"] else 0.0
        sw[k] = 1.0 / (len(sources) * 2 * per_src[(r["source"], r["negative"])])
    sw *= len(idx) / sw.sum()
    X = csr_matrix((np.array(data), np.array(ind), np.array(ptr)), shape=(len(idx), len(vocab) + nl))
    clf = LogisticRegression(C=C, solver="liblinear", max_iter=200, random_state=0)
    clf.fit(X, y, sample_weight=sw)
    coef = clf.coef_[0]
    scale = {f: (en_scale if f[0] in "wb" else 1.0) for f in col}
    weights = {f: round(float(coef[j]) * scale[f], 3) for f, j in col.items() if abs(coef[j] * scale[f]) >= prune}
    lex_w = {name: round(float(coef[len(vocab) + j]) * LEX_SCALE, 4) for j, name in enumerate(LEX_FEATURES)}
    return {"bias": round(float(clf.intercept_[0]), 4), "weights": weights, "lex_weights": lex_w,
            "calibration": {"a": 1.0, "b": 0.0}, "threshold": 0.5}


def raw_logit(model: dict[str, Any], f: tuple[set[str], dict[str, float]]) -> float:
    fs, lexf = f
    w = model["weights"]
    norm = 1.0 / math.sqrt(len(fs)) if fs else 0.0
    z = model["bias"] + norm * math.fsum(w.get(x, 0.0) for x in fs)  # fsum: independent of set order
    return z + sum(model["lex_weights"][k] * v for k, v in lexf.items())


def calibrate(model: dict[str, Any], rows, feats, idx: list[int]) -> None:
    """Platt scaling on rows ``idx`` (balanced per source like training)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    z = np.array([[raw_logit(model, feats[i])] for i in idx])
    y = np.array([1.0 if rows[i]["negative"] else 0.0 for i in idx])
    per = Counter((rows[i]["source"], rows[i]["negative"]) for i in idx)
    sw = np.array([1.0 / per[(rows[i]["source"], rows[i]["negative"])] for i in idx])
    cal = LogisticRegression(C=100.0).fit(z, y, sample_weight=sw / sw.mean())
    model["calibration"] = {"a": round(float(cal.coef_[0][0]), 4), "b": round(float(cal.intercept_[0]), 4)}


def save(model: dict[str, Any], dest: Path) -> None:
    _write_gz(dest, json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_file", help="path to negativity-dev.jsonl")
    ap.add_argument("--out", default=str(DATA / "model.json.gz"))
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--min-df", type=int, default=3)
    ap.add_argument("--min-groups", type=int, default=4)
    ap.add_argument("--max-features", type=int, default=120_000)
    ap.add_argument("--no-vader-export", action="store_true")
    args = ap.parse_args(argv)

    if not args.no_vader_export:
        print("vader entries exported:", export_vader(), file=sys.stderr)
    rows = load_rows(args.eval_file)
    feats = featurise(rows)
    buckets = [text_bucket(r["text"]) for r in rows]
    train_idx = [i for i, b in enumerate(buckets) if b >= 3]
    cal_idx = [i for i, b in enumerate(buckets) if b == 2]
    model = train(rows, feats, train_idx, C=args.C, min_df=args.min_df, min_groups=args.min_groups,
                  max_features=args.max_features)
    calibrate(model, rows, feats, cal_idx)
    sha = hashlib.sha256(Path(args.eval_file).read_bytes()).hexdigest()
    model["meta"] = {
        "data": os.path.basename(args.eval_file),
        "data_sha256": sha,
        "rows_train": len(train_idx), "rows_calibration": len(cal_idx),
        "heldout": "md5(text)[0] % 10 in {0,1}",
        "params": {"C": args.C, "min_df": args.min_df, "min_groups": args.min_groups,
                   "max_features": args.max_features, "lex_scale": LEX_SCALE},
        "n_weights": len(model["weights"]),
        "licence": "derived from CC BY-NC-SA 4.0 (airline tweets) and research-only (Chinese corpora) data; see PROVENANCE.md",
    }
    save(model, Path(args.out))
    print(f"wrote {args.out}: {len(model['weights'])} weights, lex={model['lex_weights']}, "
          f"cal={model['calibration']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
