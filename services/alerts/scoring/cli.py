"""``keymoment score``: JSON lines in, one JSON line out per input, streaming.

Input lines: ``{"text": ..., "lang"?: "zh"|"en"|"mixed", "rating"?: {"scale": ..., "value": ...}}``
Output lines (same order): ``{"negative", "mot", "confidence", "cues", "lang",
"escalation", "reasons", "text_mot", "rating_mot", "forced_by", "p_negative"}``
or ``{"error": "..."}`` for a line that cannot be scored.  Blank input lines
are skipped.  ``--model`` (default ``$SCORING_MODEL_PATH``) loads a model file
written by ``keymoment scoring train``.

Output is flushed whenever the input read so far has been answered, so an
interactive producer gets each answer before it sends the next line, while a
pipe full of lines is answered in large batches (one ``os.read`` worth of
lines per write).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO

import orjson

from .scorer import Scorer

_CHUNK = 1 << 16


def _answer(scorer: Scorer, raw: bytes) -> bytes:
    try:
        obj = orjson.loads(raw)
        if not isinstance(obj, dict):
            raise ValueError("each line must be a JSON object")
        text = obj.get("text")
        res = scorer.score(text, lang=obj.get("lang"), rating=obj.get("rating"))
        out = res.to_dict()
    except Exception as exc:  # noqa: BLE001 - one bad line must never stop the stream
        out = {"error": f"{type(exc).__name__}: {exc}"}
    return orjson.dumps(out)


def _run_fd(scorer: Scorer, fd: int, out: IO[bytes]) -> None:
    pending = b""
    while True:
        chunk = os.read(fd, _CHUNK)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        answers = [_answer(scorer, ln) for ln in lines if ln.strip()]
        if answers:
            out.write(b"\n".join(answers) + b"\n")
            out.flush()
    if pending.strip():
        out.write(_answer(scorer, pending) + b"\n")
        out.flush()


def _run_stream(scorer: Scorer, inp: IO[str], out: IO[str]) -> None:
    for line in inp:
        if line.strip():
            out.write(_answer(scorer, line.encode("utf-8")).decode("utf-8") + "\n")
            out.flush()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="keymoment score", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("SCORING_MODEL_PATH") or None,
                    help="path to a model file from `keymoment scoring train` "
                    "(default: $SCORING_MODEL_PATH, else the shipped model)")
    args = ap.parse_args(argv)
    scorer = Scorer.load(args.model)
    try:
        fd = sys.stdin.fileno()
        bout = sys.stdout.buffer
    except (AttributeError, OSError, ValueError):
        _run_stream(scorer, sys.stdin, sys.stdout)
        return 0
    try:
        _run_fd(scorer, fd, bout)
    except BrokenPipeError:
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            return 0
    except KeyboardInterrupt:
        return 130
    return 0


SCORING_USAGE = """usage: keymoment scoring COMMAND [ARGS...]

commands:
  train  rebuild the scoring model from labelled JSONL (managers' verdicts), compare it with
         the current model on a held-out slice and write a model file for SCORING_MODEL_PATH"""


def scoring_main(argv: list[str] | None = None) -> int:
    """``keymoment scoring train ...`` (training needs numpy and scipy: the ``train`` extra)."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(SCORING_USAGE)
        return 0
    if args[0] == "train":
        from .retrain import main as train_main

        return train_main(args[1:])
    print(f"keymoment scoring: unknown command {args[0]!r}\n\n{SCORING_USAGE}", file=sys.stderr)
    return 2
