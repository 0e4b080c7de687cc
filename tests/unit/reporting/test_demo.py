"""The demo stream: valid feedback, every channel, both languages, every scale,
a daily rhythm and bad days at one location."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime, timedelta

from services.reporting import demo
from shared.contracts import FeedbackIn

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)


def sample(n: int = 4000, days: float = 14) -> list[dict]:
    stream = demo.DemoStream(seed=11, days=days, now=NOW)
    return [stream.item() for _ in range(n)]


def test_every_item_is_valid_feedback_and_everything_is_covered():
    items = sample()
    for item in items:
        body = {k: v for k, v in item.items() if k != "idempotency_key"}
        FeedbackIn.model_validate(body)
    assert {i["channel"] for i in items} == set(demo.CHANNEL_WEIGHTS)
    assert {i["language"] for i in items} == {"zh-CN", "en"}
    assert {i["rating"]["scale"] for i in items if "rating" in i} == {"mot", "stars", "nps", "csat"}
    assert {i["location"] for i in items} == {p for p, _ in demo.PLACES}
    assert len({i["idempotency_key"] for i in items}) == len(items)


def test_same_seed_same_stream():
    a = demo.DemoStream(seed=3, days=2, now=NOW)
    b = demo.DemoStream(seed=3, days=2, now=NOW)
    assert [a.item() for _ in range(50)] == [b.item() for _ in range(50)]


def test_daily_rhythm_and_backfill_period():
    items = sample()
    moments = [datetime.fromisoformat(i["occurred_at"]) for i in items]
    assert all(NOW - timedelta(days=14) <= m <= NOW for m in moments)
    local_hours = Counter((m + demo.LOCAL_OFFSET).hour for m in moments)
    assert local_hours[12] > 5 * local_hours[3]  # lunch is busy, the night is quiet


def test_bad_days_at_one_location():
    stream = demo.DemoStream(seed=5, days=14, now=NOW)
    negative = Counter()
    total = Counter()
    for _ in range(12000):
        item = stream.item()
        at = datetime.fromisoformat(item["occurred_at"])
        rating = item.get("rating")
        if not rating or rating["scale"] != "mot":
            continue
        key = (item["location"] == demo.BAD_LOCATION, stream.is_bad(item["location"], at))
        total[key] += 1
        negative[key] += rating["value"] < 0
    bad = negative[(True, True)] / total[(True, True)]
    usual = negative[(True, False)] / total[(True, False)]
    others = negative[(False, False)] / total[(False, False)]
    assert bad > 2 * usual and bad > 2 * others


def test_dry_run_prints_json_lines(capsys):
    assert demo.main(["--dry-run", "--count", "3", "--seed", "1"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["channel"] for line in lines)


def test_usage_errors(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no ./var/dev-api-key here
    monkeypatch.delenv("KEYMOMENT_API_KEY", raising=False)
    assert demo.main(["--count", "1"]) == 2
    assert demo.main(["--rate", "0"]) == 2
    assert "no API key" in capsys.readouterr().err
