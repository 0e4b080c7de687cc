"""Rebuild the shipped scoring model from the labelled development files.

    .venv/bin/pip install -e '.[train]' vaderSentiment      # build-time only
    .venv/bin/python -m services.alerts.scoring.build_model \\
        /work/shared/eval/negativity-dev.jsonl /work/shared/eval/negativity-dev-industries.jsonl

Writes ``data/model.json.gz`` and ``data/vader_lexicon_filtered.tsv.gz`` (from
the installed vaderSentiment package, MIT).  Rows whose text hashes into
buckets 0-1 of 10 are never used for training or calibration (the held-out
figures in bench/scoring/RESULTS.md); bucket 2 calibrates, buckets 3-9 train.
Same trainer as ``keymoment scoring train --base none`` (``retrain.build``).

Generalisation choices (the product is judged on industries it never saw):
* an n-gram is kept only if it occurs in at least ``--min-groups`` domains
  (a source, or a category of a multi-category source), so a word tied to one
  product or one platform does not become sentiment;
* the n-gram vector is L2-normalised and the hand-written lexicon features are
  regularised 16x less than n-grams (``train.LEX_REG``), so they keep their say;
* every source has the same total weight and classes are balanced within a
  source; the neutral-only sources count as sources of their own.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from pathlib import Path

from .retrain import build, save, split, write_gz
from .train import featurise, text_bucket  # noqa: F401  (text_bucket: the split rule, imported by tests)
from .verdicts import read_jsonl

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
DEFAULT_PARAMS = {"C": 1.0, "min_df": 3, "min_groups": 2}
LICENCE = ("derived from research-only / non-commercial data (airline tweets CC BY-NC-SA 4.0, Chinese review "
           "corpora, scraped reviews and competition sets); see PROVENANCE.md")


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
    write_gz(dest, ("\n".join(rows) + "\n").encode("utf-8"))
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("eval_files", nargs="+", help="labelled development files (JSON lines)")
    ap.add_argument("--out", default=str(DATA / "model.json.gz"))
    ap.add_argument("--no-vader-export", action="store_true")
    args = ap.parse_args(argv)

    if not args.no_vader_export:
        print("vader entries exported:", export_vader(), file=sys.stderr)
    examples = [e for path in args.eval_files for e in read_jsonl(path)]
    feats = featurise(examples)
    fit_idx, cal_idx, held = split(examples)
    model = build(examples, feats, base=None, fit_idx=fit_idx, cal_idx=cal_idx, **DEFAULT_PARAMS)
    model["meta"].update({
        "data": [os.path.basename(p) for p in args.eval_files],
        "data_sha256": {os.path.basename(p): hashlib.sha256(Path(p).read_bytes()).hexdigest()
                        for p in args.eval_files},
        "rows_train": len(fit_idx), "rows_calibration": len(cal_idx), "rows_held_out": len(held),
        "heldout": "md5(text)[0] % 10 in {0,1}", "params": DEFAULT_PARAMS, "licence": LICENCE,
    })
    save(model, Path(args.out))
    print(f"wrote {args.out}: {len(model['weights'])} weights, lex={model['lex_weights']}, "
          f"cal={model['calibration']}, fit={model['meta']['fit']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
