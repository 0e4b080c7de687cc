"""`python -m services.alerts.scoring`: JSON lines in/out, streaming, errors in place."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CMD = [sys.executable, "-m", "services.alerts.scoring"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_streaming_one_line_at_a_time() -> None:
    proc = subprocess.Popen(CMD, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT, env=_env())
    assert proc.stdin and proc.stdout
    try:
        proc.stdin.write(json.dumps({"text": "服务太差了，再也不来了"}, ensure_ascii=False).encode() + b"\n")
        proc.stdin.flush()
        first = json.loads(proc.stdout.readline())  # must arrive before EOF
        assert first["mot"] == -3 and first["negative"] is True and "churn" in first["escalation"]
        proc.stdin.write(b'{"text": "Great crew, smooth flight, thank you!"}\n')
        proc.stdin.flush()
        second = json.loads(proc.stdout.readline())
        assert second["negative"] is False and second["mot"] >= 1
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=10) == 0


def test_batch_order_and_errors() -> None:
    lines = [
        '{"text": "not good at all"}',
        "this is not json",
        '{"text": "", "rating": {"scale": "csat", "value": 5}}',
        '["a list"]',
        '{"text": "ok", "rating": {"scale": "nps", "value": 42}}',
        "",
        '{"text": "我要打12315投诉", "lang": "zh", "rating": {"scale": "stars", "value": 5}}',
        '{"text": null}',
    ]
    out = subprocess.run(CMD, input="\n".join(lines).encode(), capture_output=True, cwd=ROOT, env=_env(),
                         timeout=20, check=True).stdout.decode().splitlines()
    res = [json.loads(x) for x in out]
    assert len(res) == 7  # blank line skipped, everything else answered in order
    assert res[0]["negative"] is True and set(res[0]) >= {"negative", "mot", "confidence", "cues", "lang"}
    assert "error" in res[1]
    assert res[2]["mot"] == 2 and res[2]["rating_mot"] == 2
    assert "error" in res[3]
    assert "error" in res[4] and "out of range" in res[4]["error"]
    assert res[5]["mot"] == -3 and res[5]["escalation"] == ["regulator"]
    assert "error" in res[6]


def test_no_trailing_newline() -> None:
    out = subprocess.run(CMD, input=b'{"text": "great"}', capture_output=True, cwd=ROOT, env=_env(),
                         timeout=20, check=True).stdout
    assert json.loads(out)["negative"] is False
