"""``keymoment scoring train``: rebuild the model with labelled JSONL (managers' verdicts).

    keymoment scoring train --data verdicts.jsonl [--data more.jsonl ...] --out model.json.gz
                            [--base shipped|none|PATH] [--force]

Rows are split by a hash of their text (the same rule as the shipped build):
buckets 0-1 (a fifth) are held out and never trained on; the new model and the
current one (``--base``, default ``SCORING_MODEL_PATH`` or the shipped model)
are both scored on them and compared.  The model file is written only when the
new model's negative-class F1 on the held-out slice is at least the current
one's (``--force`` writes it anyway).  Load it with ``SCORING_MODEL_PATH``.

* ``--base shipped`` / ``PATH`` (default: the current model): fine-tuning.
  The L2 penalty is centred on the base weights, so the verdicts move what they
  have evidence for; the base model's calibration and threshold are kept.
* ``--base none``: a model built from the given rows only (plus the
  hand-written lexicons and rules), calibrated per language on bucket 2.  This
  is how a company builds a model from its own data alone (PROVENANCE.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from .model import LinearModel
from .train import Example, Featurised, calibrate, featurise, fit, raw_scores, text_bucket

HELD_OUT = (0, 1)
CALIBRATION = 2
# Strength of the pull towards the base weights when fine-tuning, relative to the
# plain L2 penalty (chosen on zh_car_forum_ccf2018 verdicts; see RESULTS.md).
FINE_TUNE_PRIOR = 0.3


def split(examples: list[Example]) -> tuple[list[int], list[int], list[int]]:
    """(fit, calibration, held-out) row indices by text bucket."""
    b = [text_bucket(e.text) for e in examples]
    held = [i for i, x in enumerate(b) if x in HELD_OUT]
    cal = [i for i, x in enumerate(b) if x == CALIBRATION]
    rest = [i for i, x in enumerate(b) if x not in HELD_OUT and x != CALIBRATION]
    return rest, cal, held


def build(examples: list[Example], feats: Featurised, *, base: dict[str, Any] | None, fit_idx: list[int],
          cal_idx: list[int], **params: Any) -> dict[str, Any]:
    """The model dict: fine-tuned from ``base`` (calibration, threshold kept;
    calibration rows are then fitted too) or built from scratch and calibrated."""
    if base is not None:
        params.setdefault("prior_strength", FINE_TUNE_PRIOR)
        model = fit(examples, feats, sorted(fit_idx + cal_idx), base=base, **params)
        model["calibration"] = base["calibration"]
        model["threshold"] = base.get("threshold", 0.5)
        return model
    model = fit(examples, feats, fit_idx, **params)
    if len(cal_idx) >= 50:
        calibrate(model, examples, feats, cal_idx)
    return model


def evaluate(model: LinearModel, examples: list[Example], feats: Featurised, idx: list[int]) -> dict[str, float]:
    """Negative-class precision / recall / F1 of the text-only verdict at the model's threshold."""
    from .model import sigmoid

    d = {"weights": model.weights, "lex_weights": model.lex_weights, "bias": model.bias}
    tp = fp = fn = 0
    for i, z in zip(idx, raw_scores(d, feats, idx)):
        pred = sigmoid(model.calibrated(z, feats.langs[i])) >= model.threshold
        gold = examples[i].negative
        tp += pred and gold
        fp += pred and not gold
        fn += gold and not pred
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"rows": len(idx), "precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0}


def _base(arg: str | None) -> tuple[str, dict[str, Any] | None]:
    if arg == "none":
        return "none", None
    if not arg:
        path = os.environ.get("SCORING_MODEL_PATH") or None
    else:
        path = None if arg == "shipped" else arg
    return path or "shipped", LinearModel.from_file(path).to_dict()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="keymoment scoring train", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", action="append", required=True, help="labelled JSONL (verdicts.py); repeatable")
    ap.add_argument("--out", required=True, help="model file to write (gzip JSON)")
    ap.add_argument("--base", help="shipped | none | PATH (default: SCORING_MODEL_PATH, else shipped)")
    ap.add_argument("--force", action="store_true", help="write the model even if it is not better")
    ap.add_argument("--C", type=float, default=1.0, help="inverse L2 strength of the n-gram weights")
    args = ap.parse_args(argv)
    try:
        import numpy  # noqa: F401
        import scipy  # noqa: F401
    except ImportError:
        print("keymoment scoring train needs numpy and scipy: pip install 'keymoment[train]'", file=sys.stderr)
        return 2
    from .verdicts import read_jsonl

    try:
        examples = [e for path in args.data for e in read_jsonl(path)]
        base_name, base = _base(args.base)
    except (OSError, ValueError) as exc:
        print(f"keymoment scoring train: {exc}", file=sys.stderr)
        return 2
    fit_idx, cal_idx, held = split(examples)
    if len(fit_idx) + len(cal_idx) < 20 or not held:
        print(f"keymoment scoring train: {len(examples)} rows are too few (a fifth is held out)", file=sys.stderr)
        return 2
    feats = featurise(examples)
    model_d = build(examples, feats, base=base, fit_idx=fit_idx, cal_idx=cal_idx, C=args.C)
    sha = hashlib.sha256()
    for path in args.data:
        sha.update(Path(path).read_bytes())
    model_d["meta"].update({
        "base": base_name, "data": [os.path.basename(p) for p in args.data], "data_sha256": sha.hexdigest(),
        "rows": len(examples), "rows_held_out": len(held), "heldout": "md5(text)[0] % 10 in {0,1}",
        "licence": "trained on the operator's data" + (f" on top of base model {base_name}" if base else " only"),
    })
    new = LinearModel(model_d)
    report = {"held_out": evaluate(new, examples, feats, held)}
    if base is not None:
        report["current"] = evaluate(LinearModel(base), examples, feats, held)
    better = base is None or report["held_out"]["f1"] >= report["current"]["f1"]
    for name, r in (("current", report.get("current")), ("new", report["held_out"])):
        if r:
            print(f"{name:8s} held-out rows {r['rows']}: precision {r['precision']:.3f} recall {r['recall']:.3f} "
                  f"F1 {r['f1']:.3f}", file=sys.stderr)
    model_d["meta"]["evaluation"] = {k: {m: round(v, 4) for m, v in r.items()} for k, r in report.items()}
    if not better and not args.force:
        print("new model is not better on the held-out slice: not written (--force writes it)", file=sys.stderr)
        return 1
    save(model_d, Path(args.out))
    print(f"wrote {args.out} ({len(model_d['weights'])} weights); load it with SCORING_MODEL_PATH={args.out}",
          file=sys.stderr)
    return 0


def save(model: dict[str, Any], dest: Path) -> None:
    """The model as gzip JSON with sorted keys (same model, same bytes)."""
    write_gz(dest, json.dumps(model, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8"))


def write_gz(dest: Path, raw: bytes) -> None:
    """Reproducible gzip: no file name or timestamp in the header."""
    import gzip

    dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") as out, gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as fh:
        fh.write(raw)
