"""Helpers for the survey integration tests: an SMTP server collecting mail and a topic reader."""

from __future__ import annotations

import asyncio
import email
import email.policy
import re
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiosmtpd.controller import Controller

from keymoment.devstack.ports import free_port
from shared.contracts import SurveyRequested
from shared.events import SURVEY_REQUESTED, Envelope


class CollectingSmtp:
    """aiosmtpd handler keeping every message; ``refuse_first`` answers that many DATA commands with 451."""

    def __init__(self, refuse_first: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        self.raw: list[bytes] = []
        self.recipients: list[list[str]] = []
        self.refused = 0
        self.port = 0
        self._refuse_first = refuse_first

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd API
        if self.refused < self._refuse_first:
            self.refused += 1
            return "451 4.3.0 try again later"
        data = envelope.original_content or envelope.content
        self.raw.append(data)
        self.recipients.append(list(envelope.rcpt_tos))
        self.messages.append(email.message_from_bytes(data, policy=email.policy.default))
        return "250 OK"


class SmtpServer:
    def __init__(self, handler: CollectingSmtp) -> None:
        self.handler = handler
        self.port = handler.port = free_port()
        self._controller = Controller(handler, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> CollectingSmtp:
        self._controller.start()
        return self.handler

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


def survey_requested(*, alert_id: str | None = "alert-1", email_addr: str | None = "li.wei@example.cn",
                     name: str | None = "李伟", language: str | None = "zh-CN", request_id: str | None = None,
                     event_id: str | None = None) -> Envelope:
    data = SurveyRequested(
        request_id=request_id or str(uuid.uuid4()),
        kind="recovery",
        alert_id=alert_id,
        customer={"id": "c-42", "name": name, "email": email_addr},
        language=language,
        location="PVG T2",
        touchpoint="check-in",
        requested_at=datetime.now(UTC),
    )
    return Envelope.new(SURVEY_REQUESTED, data, source="/alerts", key=f"alert:{alert_id}", id=event_id)


def link_in(message: EmailMessage) -> str:
    body = message.get_body(("plain",)).get_content()
    match = re.search(r"https?://\S+/s/recovery\?t=[A-Za-z0-9_.\-]+", body)
    assert match, "no survey link in the plain-text part"
    return match.group(0)


async def read_topic(bootstrap: str, topic: str, *, at_least: int, timeout: float = 20.0) -> list:
    """Every message of a topic from the beginning, once at least ``at_least`` arrived
    (and then up to each partition's end, so a duplicate would be seen too)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    messages: list = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        partitions: set[int] = set()
        while not partitions:
            await consumer.topics()
            partitions = consumer.partitions_for_topic(topic) or set()
            if not partitions:
                assert loop.time() < deadline, f"topic {topic} never appeared"
                await asyncio.sleep(0.1)
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for msgs in batch.values():
                messages.extend(msgs)
            if len(messages) >= at_least:
                ends = await consumer.end_offsets(tps)
                positions = [await consumer.position(tp) for tp in tps]
                if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                    return messages
            assert loop.time() < deadline, f"only {len(messages)} of {at_least} messages on {topic}"
    finally:
        await consumer.stop()
