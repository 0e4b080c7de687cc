"""Fixtures of the mail-queue tests: a schema with only the plumbing and mail tables,
its pool, and senders running against a real SMTP server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from shared.clock import Clock, SystemClock
from shared.db import create_pool, migrate
from shared.mail.message import build_message, make_message_id
from shared.mail.metrics import MailMetrics
from shared.mail.queue import OutgoingMail
from shared.mail.settings import MAIL_COMPONENT
from shared.mail.sender import MailSender
from shared.mail.settings import MailSettings

SCHEMA = "mailtest"
PURPOSES = ("alert_notification", "survey_invitation")


@pytest.fixture
async def pool(database_url, tmp_path) -> AsyncIterator[asyncpg.Pool]:
    conn = await asyncpg.connect(database_url)
    try:  # no service tables: the plumbing and the opt-in mail component only
        await migrate(conn, schema=SCHEMA, directory=tmp_path, components=[MAIL_COMPONENT])
    finally:
        await conn.close()
    pool = await create_pool(database_url, schema=SCHEMA, min_size=1, max_size=12)
    yield pool
    await pool.close()


def mail_settings(port: int, **overrides) -> MailSettings:
    return MailSettings(**{
        "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_from": "Keymoment 客户关怀 <care@keymoment.example>",
        "mail_smtp_timeout_seconds": 5, "mail_retry_initial_seconds": 0.02, "mail_retry_max_seconds": 0.1,
        "mail_poll_seconds": 0.1, "mail_concurrency": 2, **overrides,
    })


def new_sender(settings: MailSettings, *, clock: Clock | None = None) -> MailSender:
    metrics = MailMetrics(CollectorRegistry(), PURPOSES)
    return MailSender(settings, schema=SCHEMA, metrics=metrics, clock=clock or SystemClock())


def counter(sender: MailSender, name: str, purpose: str = "survey_invitation") -> float:
    """``keymoment_mail_<name>_total{purpose}`` of this sender."""
    return sender.metrics.registry.get_sample_value(f"keymoment_mail_{name}_total", {"purpose": purpose})


@contextlib.asynccontextmanager
async def sending(sender: MailSender, pool: asyncpg.Pool, *, graceful: bool = True) -> AsyncIterator[asyncio.Task]:
    """Run ``sender`` for the block; stop it gracefully (or leave that to the block)."""
    task = asyncio.create_task(sender.run(pool))
    try:
        yield task
    finally:
        if graceful:
            await sender.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def outgoing(i: int, *, to: tuple[str, ...] = ("li.wei@example.cn",), purpose: str = "survey_invitation",
             subject: str | None = None) -> OutgoingMail:
    message_id = make_message_id(f"mail-{i}", "keymoment.example")
    message = build_message(
        sender="Keymoment <care@keymoment.example>", to=list(to), subject=subject or f"邀请 {i} / Invitation {i}",
        text=f"您好 {i}\nHello {i}\n", html=f"<p>您好 {i}</p>", message_id=message_id,
        date=datetime(2025, 1, 1, tzinfo=UTC), language="zh-CN, en",
    )
    return OutgoingMail(mail_id=f"m-{i}", purpose=purpose, ref=f"ref-{i}", message_id=message_id,
                        recipients=to, message=message)
