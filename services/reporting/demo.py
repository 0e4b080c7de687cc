"""``keymoment demo``: a realistic stream of feedback into a running system.

Both languages (zh-CN and en), every channel and rating scale, a daily rhythm
(busy at lunch and in the evening, quiet at night) and a few bad days at one
location, sent to intake's HTTP API in batches, so a newcomer sees live
dashboards and alerts::

    keymoment demo                        # 20 feedback/s for 60 s, now
    keymoment demo --days 14 --count 20000 --rate 500   # two weeks of history first
    keymoment demo --dry-run --count 5    # print the feedback as JSON lines

The API key comes from ``--api-key``, ``KEYMOMENT_API_KEY`` or ``./var/dev-api-key``
(written by ``make dev``). Exit code 0 when every item was accepted, 1 when some
were rejected or intake was unreachable, 2 on usage errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.cli import credential

# Locations and their touchpoints: a bank, an airline, restaurants, a telecom shop, a retailer.
PLACES: list[tuple[str, list[str]]] = [
    ("北京国贸店", ["checkout", "dining", "delivery"]),
    ("上海南京西路店", ["checkout", "fitting room", "delivery"]),
    ("深圳福田营业厅", ["counter", "call centre", "billing"]),
    ("PVG T2", ["check-in", "boarding", "baggage"]),
    ("Hong Kong Central branch", ["counter", "mobile app", "call centre"]),
    ("Singapore Changi T3", ["check-in", "lounge", "baggage"]),
    ("广州天河店", ["dining", "checkout", "delivery"]),
    ("London Oxford Street", ["checkout", "returns", "fitting room"]),
]
BAD_LOCATION = "北京国贸店"

CHANNEL_WEIGHTS = {"web": 30, "kiosk": 20, "email": 12, "phone": 10, "suggestion_box": 6, "survey": 22}
# Relative volume by hour of the day (local time of the place; the demo treats UTC+8 as local).
HOURLY = [1, 1, 1, 1, 1, 2, 4, 7, 9, 10, 11, 14, 15, 12, 10, 9, 10, 12, 14, 13, 10, 7, 4, 2]
LOCAL_OFFSET = timedelta(hours=8)

TEXTS: dict[int, dict[str, list[str]]] = {
    3: {"zh": ["服务太棒了，店员非常热情，还主动帮我解决了问题！", "办理速度超快，体验一流，必须点赞。",
               "航班准点，空乘特别贴心，下次还选你们。"],
        "en": ["Outstanding service, the staff went out of their way to help me!",
               "Fastest check-in I have ever had, brilliant team.", "Absolutely loved it, will be back with friends."]},
    2: {"zh": ["环境干净，服务周到，很满意。", "工作人员耐心解答，效率挺高。"],
        "en": ["Friendly staff and quick service, very happy.", "Good experience overall, the app worked smoothly."]},
    1: {"zh": ["还不错，整体挺顺利的。", "菜品味道可以，上菜稍慢。"],
        "en": ["Pretty good, nothing to complain about.", "Decent, the queue moved reasonably fast."]},
    0: {"zh": ["一般般吧，没什么特别的。", "按流程办完了。"],
        "en": ["It was okay.", "Average visit, nothing special."]},
    -1: {"zh": ["等了二十分钟才有人接待，有点失望。", "价格标签和结账金额不一致。"],
         "en": ["Waited twenty minutes before anyone helped me.", "The price on the shelf did not match the receipt."]},
    -2: {"zh": ["客服电话一直打不进去，问题拖了一周还没解决。", "行李破损了，柜台态度很冷淡。"],
         "en": ["Nobody picks up the phone, my issue has been open for a week.",
                "My bag arrived damaged and the desk staff could not care less."]},
    -3: {"zh": ["太差了！被多扣了钱还没人管，我要投诉到消协！", "食物里有头发，经理还不道歉，再也不来了！"],
         "en": ["Terrible! I was charged twice and nobody will refund me, I am filing a complaint.",
                "Found a hair in my food and the manager refused to apologise. Never again!"]},
}


@dataclass
class DemoStream:
    """Deterministic (by seed) generator of ``FeedbackIn`` JSON objects."""

    seed: int = 7
    days: float = 0.0
    now: datetime | None = None
    bad_days: int = 3

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.now = self.now or datetime.now(UTC)
        self._serial = 0

    # --- when ----------------------------------------------------------------------------------
    def _moment(self) -> datetime:
        if self.days <= 0:
            return self.now
        while True:  # rejection sampling: uniform over the period, kept with the hour's relative weight
            at = self.now - timedelta(seconds=self.rng.uniform(0, self.days * 86_400))
            if self.rng.uniform(0, max(HOURLY)) <= HOURLY[(at + LOCAL_OFFSET).hour]:
                return at

    def is_bad(self, location: str, at: datetime) -> bool:
        """The bad location has bad days: the last ``bad_days`` days but one (today recovers)."""
        if location != BAD_LOCATION:
            return False
        age_days = (self.now - at).total_seconds() / 86_400
        return 1 <= age_days < 1 + self.bad_days or (self.days <= 0)

    # --- what -------------------------------------------------------------------------------------
    def _mot(self, bad: bool) -> int:
        weights = [4, 6, 10, 12, 28, 25, 15] if bad else [1, 2, 5, 12, 25, 33, 22]
        return self.rng.choices(range(-3, 4), weights=weights)[0]

    def _rating(self, channel: str, mot: int) -> dict | None:
        r = self.rng.random()
        if channel == "kiosk":
            return {"scale": "mot", "value": mot} if r < 0.7 else {"scale": "stars", "value": _clamp(mot + 3, 1, 5)}
        if channel == "survey":
            if r < 0.55:
                return {"scale": "nps", "value": _clamp(round(5 + mot * 1.6 + self.rng.uniform(-1, 1)), 0, 10)}
            return {"scale": "csat", "value": _clamp(round(3 + mot * 0.7 + self.rng.uniform(-0.5, 0.5)), 1, 5)}
        if channel == "web":
            if r < 0.4:
                return {"scale": "csat", "value": _clamp(round(3 + mot * 0.7), 1, 5)}
            return {"scale": "stars", "value": _clamp(mot + 3, 1, 5)} if r < 0.7 else None
        if channel == "suggestion_box" and r < 0.3:
            return {"scale": "csat", "value": _clamp(round(3 + mot * 0.7), 1, 5)}
        return None  # email and phone: words only

    def _details(self, channel: str) -> dict[str, Any]:
        n = self._serial
        if channel == "kiosk":
            return {"kiosk": {"device_id": f"kiosk-{n % 12:02d}"}}
        if channel == "phone":
            return {"phone": {"call_id": f"demo-call-{n}", "agent_id": f"agent-{n % 30}",
                              "duration_seconds": self.rng.randint(40, 900), "direction": "inbound"}}
        if channel == "survey":
            return {"survey": {"survey_id": "demo-relationship", "response_id": f"demo-r-{n}"}}
        if channel == "suggestion_box":
            return {"suggestion_box": {"import_id": "demo", "card_id": f"card-{n}"}}
        if channel == "web":
            return {"web": {"form_id": "contact"}}
        return {}

    def item(self) -> dict[str, Any]:
        self._serial += 1
        at = self._moment()
        location, touchpoints = self.rng.choice(PLACES)
        touchpoint = self.rng.choice(touchpoints)
        channel = self.rng.choices(list(CHANNEL_WEIGHTS), weights=list(CHANNEL_WEIGHTS.values()))[0]
        mot = self._mot(self.is_bad(location, at))
        rating = self._rating(channel, mot)
        lang = "zh" if (any("\u4e00" <= ch <= "\u9fff" for ch in location) or self.rng.random() < 0.3) \
            and self.rng.random() < 0.85 else "en"
        with_text = rating is None or self.rng.random() < 0.6
        item: dict[str, Any] = {
            "channel": channel, "location": location, "touchpoint": touchpoint,
            "occurred_at": at.isoformat(timespec="seconds"),
            "language": "zh-CN" if lang == "zh" else "en",
            **self._details(channel),
        }
        if with_text:
            item["text"] = self.rng.choice(TEXTS[mot][lang])
        if rating is not None:
            item["rating"] = rating
        if self.rng.random() < 0.5:  # known customers; anonymous otherwise (ids only, no personal data)
            item["customer"] = {"id": f"demo-c-{self.rng.randint(1, 5000):05d}"}
        item["idempotency_key"] = f"demo-{self.seed}-{self._serial}"
        return item

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.item()


def _clamp(v: int, low: int, high: int) -> int:
    return max(low, min(high, v))


# ------------------------------------------------------------------------------------------ sending
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keymoment demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("KEYMOMENT_INTAKE_URL", "http://127.0.0.1:8001"),
                   help="intake's base URL (default %(default)s)")
    p.add_argument("--api-key", help="intake API key (default: $KEYMOMENT_API_KEY, else ./var/dev-api-key)")
    p.add_argument("--rate", type=float, default=20.0, help="feedback per second (default %(default)s)")
    p.add_argument("--duration", type=float, default=None, help="seconds to run (default 60 unless --count)")
    p.add_argument("--count", type=int, default=None, help="feedback to send, then stop")
    p.add_argument("--days", type=float, default=0.0,
                   help="spread occurred_at over the last N days (backfill with a daily rhythm); 0 = now")
    p.add_argument("--batch", type=int, default=100, help="items per POST /v1/feedback:batch (1..1000)")
    p.add_argument("--seed", type=int, default=None,
                   help="random seed: the same seed gives the same stream, and intake takes a re-sent item as the "
                        "same feedback (idempotency keys), so re-running a backfill adds nothing; default: random")
    p.add_argument("--dry-run", action="store_true", help="print the feedback as JSON lines instead of sending")
    return p


@dataclass
class Totals:
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    failed_batches: int = 0


async def send(stream: DemoStream, *, url: str, api_key: str, rate: float, count: int | None,
               duration: float | None, batch: int) -> Totals:
    import httpx

    totals = Totals()
    started = time.monotonic()
    deadline = started + duration if duration is not None else None
    items = iter(stream)
    async with httpx.AsyncClient(base_url=url.rstrip("/"), timeout=30,
                                 headers={"X-API-Key": api_key}) as http:
        while (count is None or totals.sent < count) and (deadline is None or time.monotonic() < deadline):
            size = batch if count is None else min(batch, count - totals.sent)
            # pace: the batch may leave when the rate allows all of it
            due = started + (totals.sent + size) / rate
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            chunk = [next(items) for _ in range(size)]
            totals.sent += size
            try:
                response = await http.post("/v1/feedback:batch", json=chunk)
            except httpx.HTTPError as exc:
                totals.failed_batches += 1
                print(f"keymoment demo: intake unreachable: {exc!r}", file=sys.stderr)
                if totals.failed_batches >= 3:
                    break
                continue
            if response.status_code != 200:
                totals.failed_batches += 1
                totals.rejected += size
                print(f"keymoment demo: batch refused: HTTP {response.status_code} {response.text[:300]}",
                      file=sys.stderr)
                if response.status_code in (401, 403) or totals.failed_batches >= 3:
                    break
                continue
            body = response.json()
            totals.accepted += body["accepted"]
            totals.rejected += body["rejected"]
            for result in body["results"]:
                if "errors" in result:
                    print(f"keymoment demo: item rejected: {json.dumps(result['errors'], ensure_ascii=False)[:300]}",
                          file=sys.stderr)
    return totals


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    if args.rate <= 0 or not 1 <= args.batch <= 1000 or (args.count is not None and args.count < 1):
        print("keymoment demo: --rate must be > 0, --batch 1..1000, --count >= 1", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1, 10**9)
    stream = DemoStream(seed=seed, days=args.days)
    if args.dry_run:
        for _, item in zip(range(args.count or 10), stream, strict=False):
            sys.stdout.write(json.dumps(item, ensure_ascii=False) + "\n")
        return 0
    key = credential(args.api_key, env="KEYMOMENT_API_KEY", dev_file="dev-api-key")
    if not key:
        print("keymoment demo: no API key (use --api-key, KEYMOMENT_API_KEY or run `make dev` for ./var/dev-api-key)",
              file=sys.stderr)
        return 2
    duration = args.duration if args.duration is not None else (None if args.count else 60.0)
    started = time.monotonic()
    totals = asyncio.run(send(stream, url=args.url, api_key=key, rate=args.rate, count=args.count,
                              duration=duration, batch=args.batch))
    elapsed = time.monotonic() - started
    print(f"keymoment demo: sent {totals.sent}, accepted {totals.accepted}, rejected {totals.rejected} "
          f"in {elapsed:.1f}s ({totals.accepted / elapsed if elapsed else 0:.0f}/s) to {args.url} (seed {seed})")
    return 0 if totals.rejected == 0 and totals.failed_batches == 0 and totals.accepted == totals.sent else 1


if __name__ == "__main__":
    raise SystemExit(main())
