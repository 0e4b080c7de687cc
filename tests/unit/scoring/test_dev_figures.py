"""Quality on the development file's held-out rows, when that file is present.

The file lives outside the repository (``../shared/eval/negativity-dev.jsonl``
next to the checkout, or ``KEYMOMENT_EVAL_FILE``); on a clean clone without it
these tests skip.  A fifth of the held-out rows (never used for training or
calibration) keeps this under a second; the full figures are in
bench/scoring/RESULTS.md.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path

import pytest

from services.alerts.scoring import Scorer
from services.alerts.scoring.build_model import text_bucket

EVAL_FILE = Path(os.environ.get("KEYMOMENT_EVAL_FILE")
                 or Path(__file__).resolve().parents[3].parent / "shared" / "eval" / "negativity-dev.jsonl")

pytestmark = pytest.mark.skipif(
    not EVAL_FILE.is_file(), reason=f"development file {EVAL_FILE} not present (it is never copied into the repo)")


def test_heldout_f1_per_source_stays_above_floor() -> None:
    scorer = Scorer.load()
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    with EVAL_FILE.open(encoding="utf-8") as fh:
        for k, line in enumerate(fh):
            if k % 5:
                continue
            row = json.loads(line)
            if text_bucket(row["text"]) >= 2:
                continue
            pred = scorer.score(row["text"]).negative
            gold = bool(row["negative"])
            c = counts[row["source"]]
            c[0] += pred and gold
            c[1] += pred and not gold
            c[2] += gold and not pred
    assert set(counts) == {"online_shopping_10_cats", "twitter_us_airline", "waimai_10k"}
    for source, (tp, fp, fn) in counts.items():
        f1 = 2 * tp / (2 * tp + fp + fn)
        assert f1 >= 0.82, f"{source}: F1 {f1:.3f} on a sample of held-out rows"
