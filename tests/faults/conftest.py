"""The fault tests' system: a stack of its own (these tests stop the broker and PostgreSQL), every
service as deployed (``python -m services.<name>``), two replicas of each consumer, one SMTP sink,
short retry delays (the "compressed" backoff of the scenarios), and the accounting every scenario
ends with (``System.settle``): every accepted feedback reflected in reporting once, every negative
with exactly one alert and one first mail, nothing in a ``.dlq`` but the poison."""

from __future__ import annotations

import asyncio
import email
import json
import time
import uuid
from dataclasses import dataclass, field
from email import policy
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from keymoment.devstack.stack import ServiceSpec, Stack
from shared.events import EVENT_TYPES, dlq_topic
from tests.support.kafka import read_topic
from tests.support.services import wait_until

DEV_KEY = f"km_dev_{uuid.uuid4().hex}"
ADMIN_TOKEN = "faults-admin-token"
CONSUMERS = ("alerts", "reporting", "survey")
REPLICAS = {name: (name, f"{name}-2") for name in CONSUMERS}
POISON_HEADER = "fault_poison"
RECIPIENT = "duty@faults.example"
ROUTES = f"""\
teams:
  faults:
    account_manager: account@faults.example
    solution_manager: solution@faults.example
    delivery_manager: {RECIPIENT}
    escalation:
      - roles: [delivery_manager]
default_route:
  team: faults
"""
TRIGGERED = {
    "id": "after-never", "title": {"zh": "回访", "en": "Follow-up"}, "access": "link",
    "questions": [{"id": "feeling", "type": "mot", "label": {"zh": "您的感受如何？", "en": "How did it feel?"}}],
    "triggers": [{"on": "feedback", "touchpoints": ["never-posted-by-these-tests"]}],
}
FIGURES: dict[str, dict] = {}  # scenario -> figures, for RELIABILITY.md


def _env(routes: Path) -> dict[str, str]:
    return {
        "KEYMOMENT_ENV": "test", "LOG_LEVEL": "WARNING", "INTAKE_DEV_API_KEY": DEV_KEY, "ADMIN_TOKEN": ADMIN_TOKEN,
        "KAFKA_TOPIC_PARTITIONS": "4", "KAFKA_SESSION_TIMEOUT_MS": "3000",
        "ALERTS_ROUTES_FILE": str(routes), "ALERTS_GROUP_WINDOW_SECONDS": "0",  # one alert per negative
        # the compressed backoff: the old sender gave up after 12 attempts, here ~10 s
        "MAIL_RETRY_INITIAL_SECONDS": "0.2", "MAIL_RETRY_MAX_SECONDS": "1", "MAIL_POLL_SECONDS": "0.5",
        "MAIL_LEASE_SECONDS": "6", "REPORTING_REFRESH_SECONDS": "0.5", "INTAKE_PUBLISH_TIMEOUT_SECONDS": "1",
    }


@dataclass
class Posted:
    ids: list[str] = field(default_factory=list)
    negatives: set[str] = field(default_factory=set)
    refused: int = 0  # answered 503 (nothing accepted): not counted, never a 2xx

    def __iadd__(self, other: Posted) -> Posted:
        self.ids += other.ids
        self.negatives |= other.negatives
        self.refused += other.refused
        return self


class System:
    def __init__(self, stack: Stack, db: asyncpg.Pool) -> None:
        self.stack = stack
        self.db = db
        self.poison: set[str] = set()  # letters' POISON_HEADER values sent so far

    def url(self, name: str) -> str:
        return self.stack.url(name)

    async def post(self, scenario: str, n: int, *, concurrency: int = 16, negative_every: int = 3,
                   round_: int = 0) -> Posted:
        """``n`` feedback through intake's HTTP API, a third negative; returns what was accepted (202)."""
        gate = asyncio.Semaphore(concurrency)
        posted = Posted()

        async def one(http: httpx.AsyncClient, i: int) -> None:
            mot = -(1 + i % 3) if i % negative_every == 0 else i % 4
            body = {"channel": "kiosk", "location": f"{scenario}-{i % 4}", "touchpoint": "checkout",
                    "rating": {"scale": "mot", "value": mot}, "text": f"{scenario} #{i}"}
            async with gate:
                r = await http.post("/v1/feedback", json=body,
                                    headers={"X-API-Key": DEV_KEY, "Idempotency-Key": f"{scenario}-{round_}-{i}"})
            if r.status_code == 202:
                posted.ids.append(r.json()["id"])
                if mot < 0:
                    posted.negatives.add(r.json()["id"])
            else:
                assert r.status_code == 503, r.text  # never a 2xx that is not a promise, never a 5xx but 503
                posted.refused += 1

        async with httpx.AsyncClient(base_url=self.url("intake"), timeout=30) as http:
            await asyncio.gather(*(one(http, i) for i in range(n)))
        return posted

    async def readyz(self, name: str) -> tuple[int, dict]:
        async with httpx.AsyncClient(timeout=10) as http:
            r = await http.get(f"{self.url(name)}/readyz")
            return r.status_code, r.json()

    def kill(self, *names: str) -> None:
        for name in names:
            self.stack.kill(name)

    def start(self, *names: str) -> None:
        for name in names:
            self.stack.start_component(name)

    async def reflected(self, ids: list[str]) -> int:
        return await self.db.fetchval(
            "SELECT count(*) FROM reporting.feedback_facts WHERE feedback_id = ANY($1) AND received AND mot IS NOT NULL",
            ids)

    async def settle(self, scenario: str, posted: Posted, *, since: float, timeout: float = 120.0) -> dict:
        """Wait until everything accepted went all the way, then check it went there exactly once; returns
        the scenario's figures (recovery time from ``since``, lost, duplicated)."""
        ids, negatives = posted.ids, sorted(posted.negatives)
        await wait_until(lambda: self._done(ids, negatives), timeout=timeout, interval=0.5,
                         what=f"{scenario}: {len(ids)} feedback reflected and {len(negatives)} alerts mailed")
        recovery = time.monotonic() - since
        reflected = await self.reflected(ids)
        counted = await self.db.fetchval(
            "SELECT coalesce(sum(value), 0)::int FROM reporting.kpi_counters WHERE metric = 'feedback' "
            "AND location LIKE $1", f"{scenario}-%")
        alerts = await self.db.fetch(
            "SELECT feedback_id, alert_id FROM alerts.alert_feedback WHERE feedback_id = ANY($1) AND role = 'raised'",
            negatives)
        mails = self.mails_by_alert()
        per_alert = {a["alert_id"]: mails.get(a["alert_id"], []) for a in alerts}
        figures = {
            "accepted": len(ids), "refused_503": posted.refused, "reflected": reflected,
            "lost": len(ids) - reflected, "counted_twice": counted - len(ids),
            "negatives": len(negatives), "alerts": len(alerts),
            "first_mails": sum(len(set(m)) for m in per_alert.values()),
            "mail_copies": sum(len(m) - len(set(m)) for m in per_alert.values()),  # same Message-ID again
            "recovery_s": round(recovery, 1),
        }
        FIGURES[scenario] = figures
        assert reflected == len(ids), figures
        assert counted == len(ids), figures  # each feedback counted once in the series
        assert sorted(a["feedback_id"] for a in alerts) == negatives, figures  # one alert per negative
        assert all(len(set(m)) == 1 for m in per_alert.values()), figures  # one first mail per alert
        await self.assert_only_poison_in_dlq()
        return figures

    async def _done(self, ids: list[str], negatives: list[str]) -> bool:
        if await self.reflected(ids) < len(ids):
            return False
        alert_ids = [r["alert_id"] for r in await self.db.fetch(
            "SELECT alert_id FROM alerts.alert_feedback WHERE feedback_id = ANY($1) AND role = 'raised'", negatives)]
        if len(alert_ids) < len(negatives):
            return False
        mails = self.mails_by_alert()
        return all(mails.get(a) for a in alert_ids)

    def mails_by_alert(self) -> dict[str, list[str]]:
        """Message-IDs the SMTP sink received, by the alert they are about (first mails only)."""
        found: dict[str, list[str]] = {}
        for mail in self.stack.mailbox.messages():
            message = email.message_from_bytes(mail.raw, policy=policy.default)
            alert = message.get("X-Keymoment-Alert")
            subject = str(message.get("Subject", ""))
            if alert and not any(p in subject for p in ("升级", "更新", "重开")):
                found.setdefault(alert, []).append(str(message.get("Message-ID")))
        return found

    async def dead_letters(self) -> list:
        """Every letter in every ``.dlq`` (one not created yet holds none: it appears with its first letter)."""
        consumer = AIOKafkaConsumer(bootstrap_servers=self.stack.bootstrap_servers, group_id=None)
        await consumer.start()
        try:
            existing = await consumer.topics()
        finally:
            await consumer.stop()
        letters = []
        for topic in sorted({dlq_topic(et.topic) for et in EVENT_TYPES.values()} & existing):
            letters += await read_topic(self.stack.bootstrap_servers, topic, at_least=0, timeout=30)
        return letters

    async def assert_only_poison_in_dlq(self) -> None:
        for letter in await self.dead_letters():
            headers = dict(letter.headers)
            assert headers.get(POISON_HEADER, b"").decode() in self.poison, {
                k: v.decode("utf-8", "replace")[:300] for k, v in letter.headers}


@pytest.fixture(scope="module")
async def system(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("faults")
    routes = workdir / "routes.yaml"
    routes.write_text(ROUTES, encoding="utf-8")
    specs = ["intake"] + [ServiceSpec(replica, ServiceSpec.service(name).args)
                          for name in CONSUMERS for replica in REPLICAS[name]]
    stack = Stack(workdir, kafka=True, postgres=True, smtp=True, services=specs, env=_env(routes), ready_timeout=120)
    await asyncio.to_thread(stack.start)
    db = await asyncpg.create_pool(stack.database_url, min_size=1, max_size=4)
    try:
        # A feedback trigger that matches nothing posted here: survey's consumers then read (decode,
        # dedupe) every feedback.received.v1 under each fault, as with a real trigger.
        async with httpx.AsyncClient(base_url=stack.url("survey")) as http:
            answer = await http.post("/v1/surveys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, json=TRIGGERED)
            assert answer.status_code == 201, answer.text
        yield System(stack, db)
    finally:
        await db.close()
        await asyncio.to_thread(stack.stop, 20.0)
        if FIGURES:
            print("\nfault figures:\n" + json.dumps(FIGURES, indent=1))
