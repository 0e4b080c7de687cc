"""shared.privacy.erasure.apply on a real schema: once per erasure, the customer's waiting events
out of the outbox, the pseudonyms remembered for late events, a report through the outbox; and the
erasure API's refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.intake.service import to_event
from services.intake.settings import IntakeSettings
from services.reporting import cli
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from shared.contracts import ErasureApplied, ErasureRequested, FeedbackIn
from shared.db import create_pool, migrate
from shared.events import Envelope
from shared.outbox import enqueue
from shared.privacy import DEV_PRIVACY_HASH_KEY, pseudonym
from shared.privacy.erasure import Erasure, apply, covered, erased_since
from tests.support.services import running

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[3]
KEY = DEV_PRIVACY_HASH_KEY.encode()
AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def feedback(customer: dict) -> Envelope:
    fb = FeedbackIn.model_validate({"channel": "web", "text": "太慢了", "customer": customer})
    return to_event(fb, feedback_id=f"f-{customer.get('email') or customer.get('id')}", source="web", privacy_key=KEY)


async def test_an_erasure_is_applied_once_and_reported(database_url):
    settings = IntakeSettings(keymoment_env="test", database_url=database_url)
    conn = await asyncpg.connect(database_url)
    try:
        await migrate(conn, schema="intake", directory=ROOT / "services/intake/migrations",
                      components=settings.migration_components())
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema="intake", min_size=1, max_size=1)
    found: list[set[str]] = []

    async def erase(conn: asyncpg.Connection, erasure: Erasure) -> None:
        found.append(set(erasure.subjects))
        erasure.also(["id:" + "0" * 32, "not a pseudonym"])  # a contact found on a row
        erasure.count("things", 2)

    request = ErasureRequested(erasure_id="e-1", subjects=[pseudonym(KEY, "email", "li.wei@example.cn")],
                               requested_at=AT)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await enqueue(conn, [("t.feedback", feedback({"email": "Li.Wei@Example.cn", "name": "李伟"})),
                                 ("t.feedback", feedback({"email": "wang.fang@example.cn"})),
                                 ("t.feedback", feedback({"id": "C-7"})),
                                 ("t.feedback", feedback({"email": "li.wei@example.cn", "phone": "+86 1"}))])
            await conn.execute(  # one of hers Kafka refused for good, set aside for a person
                """INSERT INTO outbox_dead_letters (id, topic, key, headers, value, created_at, reason, error)
                   SELECT id, topic, key, headers, value, created_at, 'permanent', 'too large' FROM outbox
                   WHERE id = (SELECT max(id) FROM outbox)""")
            await conn.execute("DELETE FROM outbox WHERE id = (SELECT max(id) FROM outbox)")
            first = await apply(conn, request, settings=settings, erase=erase, now=AT + timedelta(seconds=1))
        async with pool.acquire() as conn, conn.transaction():
            again = await apply(conn, request, settings=settings, erase=erase, now=AT + timedelta(seconds=9))
        async with pool.acquire() as conn:
            rows = await conn.fetch("SELECT topic, value FROM outbox ORDER BY id")
            set_aside = await conn.fetchval("SELECT count(*) FROM outbox_dead_letters")
            applied = await conn.fetchrow("SELECT * FROM erasures")
            erased = await erased_since(conn, [pseudonym(KEY, "email", "li.wei@example.cn"), "id:" + "0" * 32,
                                               pseudonym(KEY, "email", "wang.fang@example.cn")])
    finally:
        await pool.close()

    assert first is not None and again is None, "a replayed erasure does nothing more"
    assert found == [{pseudonym(KEY, "email", "li.wei@example.cn")}]
    assert first.erased == {"things": 2, "outbox": 1, "outbox_dead_letters": 1} and set_aside == 0
    values = [json.loads(r["value"]) for r in rows]
    customers = [v["customer"] for v in values if "customer" in v]
    assert customers == [{"email": "wang.fang@example.cn"}, {"id": "C-7"}], "only her waiting event is gone"
    (report,) = [ErasureApplied.model_validate(v) for v in values if "erasure_id" in v]
    assert (report.service, report.erased, report.applied_at) == (
        "intake", {"outbox": 1, "outbox_dead_letters": 1, "things": 2}, AT + timedelta(seconds=1))
    assert json.loads(applied["erased"]) == report.erased
    assert set(erased) == {pseudonym(KEY, "email", "li.wei@example.cn"), "id:" + "0" * 32}
    assert covered(erased, ["id:" + "0" * 32], AT - timedelta(days=1)), "her older events are dropped"
    assert not covered(erased, ["id:" + "0" * 32], AT + timedelta(minutes=1)), "newer ones are not"


async def test_the_erasure_api_refuses_what_it_cannot_do(service_env):
    settings = ReportingSettings(**service_env)
    async with running(create_reporting(settings)) as reporting:
        async with httpx.AsyncClient(base_url=reporting.url) as http:
            assert (await http.post("/v1/privacy/erasures", json={"emails": ["a@b.cn"]})).status_code == 401
            admin = {"Authorization": "Bearer dev-admin-token"}
            nobody = await http.post("/v1/privacy/erasures", json={}, headers=admin)
            assert nobody.status_code == 422 and "at least one" in nobody.text
            bad = await http.post("/v1/privacy/erasures", json={"emails": ["not-an-address"]}, headers=admin)
            assert bad.status_code == 422
            assert (await http.get("/v1/privacy/erasures/nope", headers=admin)).status_code == 404
            made = await http.post("/v1/privacy/erasures", json={"phones": ["+86 139 1234 5678"]}, headers=admin)
            assert made.status_code == 202 and made.headers["location"] == f"/v1/privacy/erasures/{made.json()['id']}"
            assert made.json()["contacts"] == {"phone": 1} and made.json()["requested_by"] == "admin"
            register = await reporting.runtime.pool.fetchrow("SELECT * FROM erasure_requests")
            assert "139" not in json.dumps(dict(register), default=str), "the register keeps no contact"
    assert cli.main(["erase", "--token", "t", "--url", reporting.url]) == 2  # names nobody: a usage error
