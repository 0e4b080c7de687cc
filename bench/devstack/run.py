"""Dev-stack benchmark: how long ``keymoment dev`` (what ``make dev`` runs) takes to
be ready and to stop.

Runs ``python -m keymoment dev --port-base N`` (eight free ports) ``--runs`` times on
one state directory: the first run is cold (``initdb`` of ``var/pg``, secrets created),
the others warm (the everyday case). For each run it records the time from the
process start to its ``all components ready`` line (interpreter start-up included),
the stack's own figure printed on that line, and the time from SIGINT (Ctrl-C) to
the process exit. Targets: ready in < 20 s, stopped in < 10 s (README).

    python -m bench.devstack.run [--runs 3] [--write]

``--write`` stores the Markdown in bench/devstack/RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench.common import header, work_dir
from keymoment.devstack.devrun import DevRun
from keymoment.devstack.ports import free_port_block

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
READY_TARGET_S = 20.0
STOP_TARGET_S = 10.0
STACK_FIGURE = re.compile(r"all components ready in ([0-9.]+)s")


def measure(runs: int) -> list[dict]:
    results = []
    with work_dir("devstack") as work:
        for n in range(runs):
            dev = DevRun(work / "var", free_port_block(8), cwd=ROOT)
            try:
                ready = dev.wait_for(timeout=300)
            finally:
                stop = dev.interrupt(timeout=120)
            figure = STACK_FIGURE.search(dev.output)
            results.append({"run": "cold" if n == 0 else "warm", "ready_s": ready, "stop_s": stop,
                            "stack_s": float(figure.group(1)) if figure else float("nan")})
    return results


def report(results: list[dict]) -> str:
    ok = lambda cond: "met" if cond else "MISSED"  # noqa: E731
    warm = [r for r in results if r["run"] == "warm"] or results
    worst_ready = max(r["ready_s"] for r in warm)
    worst_stop = max(r["stop_s"] for r in results)
    rows = [f"| {i + 1} ({r['run']}) | {r['ready_s']:.1f} s | {r['stack_s']:.1f} s | {r['stop_s']:.1f} s |"
            for i, r in enumerate(results)]
    return "\n".join([
        header("dev stack: `keymoment dev` start-up and stop"),
        "",
        "Tansu, PostgreSQL 18, the SMTP sink and the four services as `make dev` starts them, on free ports "
        "(`--port-base`); one state directory for every run, so the first is cold (initdb) and the rest warm.",
        "",
        "| run | process start -> ready line | stack's own figure | SIGINT -> exit |",
        "|---|---:|---:|---:|",
        *rows,
        "",
        "| measure | result | target | |",
        "|---|---|---|---|",
        f"| slowest warm start (process start -> all components ready) | {worst_ready:.1f} s | < {READY_TARGET_S:g} s "
        f"| {ok(worst_ready < READY_TARGET_S)} |",
        f"| slowest stop (SIGINT -> every process gone) | {worst_stop:.1f} s | < {STOP_TARGET_S:g} s "
        f"| {ok(worst_stop < STOP_TARGET_S)} |",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.devstack.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="start/stop cycles (the first is cold)")
    parser.add_argument("--write", action="store_true", help="store the Markdown in bench/devstack/RESULTS.md")
    args = parser.parse_args(argv)
    text = report(measure(args.runs))
    print(text)
    if args.write:
        (HERE / "RESULTS.md").write_text("# Dev-stack benchmark\n\n" + text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
