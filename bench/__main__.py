"""``make bench``: run every benchmark (bench/<area>/run.py) one after the other.

Each benchmark prints a Markdown section with date, machine, command and
figures (ratios against a reference measured in the same run where the target
is relative). The combined output goes to bench/results/latest.md; the
figures worth keeping are copied into BENCHMARKS.md by hand with the date.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[str]:
    return sorted(p.parent.name for p in HERE.glob("*/run.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("areas", nargs="*", help=f"which benchmarks (default all: {', '.join(discover())})")
    args = parser.parse_args(argv)
    areas = args.areas or discover()
    unknown = set(areas) - set(discover())
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    out_dir = HERE / "results"
    out_dir.mkdir(exist_ok=True)
    sections, failed = [], []
    for area in areas:
        print(f"== bench {area}", file=sys.stderr, flush=True)
        done = subprocess.run(
            [sys.executable, "-m", f"bench.{area}.run"], cwd=HERE.parent, stdout=subprocess.PIPE, text=True
        )
        sections.append(done.stdout)
        if done.returncode != 0:
            failed.append(area)
            sections.append(f"\n**bench {area} failed with exit code {done.returncode}**\n")
        print(done.stdout, flush=True)
    (out_dir / "latest.md").write_text("\n\n".join(sections), encoding="utf-8")
    print(f"written {out_dir / 'latest.md'}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
