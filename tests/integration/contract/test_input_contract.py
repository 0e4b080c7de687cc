"""Anything intake accepts, every consumer processes: a property over generated feedback.

Payloads are generated field by field from the canonical model (``FeedbackIn``
and its detail models; a guard below fails when the model gains a field the
strategy does not cover), with the values that broke the pipeline before:
NUL and other control characters, lone surrogates, times such as
``9999-12-31T23:59:59-14:00``, integers beyond 64 bits, NaN and infinity.
Each payload goes through intake's validation the three ways a channel uses
it (JSON parsed by pydantic as ``POST /v1/feedback`` does, JSON parsed by
orjson as the batch route does, Python values as the CSV, survey and email
channels build them); whatever is accepted becomes its ``feedback.received.v1``
event, goes over the wire format a consumer reads, and is handed to the
handlers alerts and reporting registered for it, on a real PostgreSQL with
their real migrations, inside a transaction as the consumer runner would.
What alerts publishes (``feedback.scored.v1`` through the real broker, alert
events through its outbox) goes on to reporting's handlers. Nothing may fail.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.alerts.app import create_app as create_alerts
from services.alerts.settings import AlertsSettings
from services.intake.service import to_event
from services.reporting.app import create_app as create_reporting
from services.reporting.settings import ReportingSettings
from shared.contracts import (
    Attachment, Channel, Customer, EmailDetails, FeedbackIn, KioskDetails, PhoneDetails, SuggestionBoxDetails, SurveyDetails,
    WebDetails,
)
from shared.db import create_pool, migrate_dsn
from shared.events import ALERT_RAISED, ALERT_UPDATED, FEEDBACK_RECEIVED, FEEDBACK_SCORED, Envelope
from shared.kafka import ensure_topics

pytestmark = pytest.mark.integration

EXAMPLES = 100  # each is a batch of 1-4 payloads

# --- strategies, one per field of the canonical model -------------------------------------------------------
# Each field has its usual values and its awkward ones. A payload is made of usual values with, most of the
# time, one field awkward: a payload with several awkward fields would nearly always be refused for one of them
# and tell nothing about the others.

UNSTORABLE = st.sampled_from([chr(c) for c in range(0x20) if c not in (9, 10, 13)] + ["\ud800", "\udfff", "\udc80"])
AWKWARD = st.sampled_from(["\t", "\n", "\r\n", "\x7f", "\x85", "\u2028", "\ufeff", "\ufffd", "\u200b", " ", "😡", "𠀀"])
WORDS = st.sampled_from([
    "排队两个小时", "态度很差", "服务很好", "非常满意", "退款三周没到账", "terrible", "great service", "rude staff",
    "never again", "thank you", "还可以", "一般般", "😡", "👍", "!", "?", "0", "-3", "=HYPERLINK(1)", "<b>", "'",
    '"', "\\", "%s", "$1", "NULL", " ", "\n",
])
PLAIN = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=30)


@dataclass(frozen=True)
class Values:
    usual: st.SearchStrategy
    awkward: st.SearchStrategy


def free_text(max_words: int = 12) -> Values:
    """Free text is cleaned, never refused."""
    return Values(
        st.lists(WORDS, max_size=max_words).map("".join),
        st.lists(st.one_of(WORDS, UNSTORABLE, AWKWARD, st.text(max_size=4)), min_size=1, max_size=max_words)
        .map("".join),
    )


def key_text(max_size: int = 40) -> Values:
    """Ids and labels: refused when they hold what PostgreSQL cannot store."""
    return Values(
        st.one_of(PLAIN, st.sampled_from(["store-12", "checkout", "朝阳门支行", "T2 登机口", "C-1029"])),
        st.one_of(st.tuples(PLAIN, UNSTORABLE, PLAIN).map("".join), st.tuples(UNSTORABLE, PLAIN).map("".join),
                  st.sampled_from(["", " ", "\t", "x" * (max_size + 1)])),
    )


OFFSETS = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
NUMBERS = st.one_of(
    st.integers(), st.integers(-(2**70), 2**70), st.sampled_from([2**53 - 1, 2**53, -(2**53), 2**63, 2**64]),
    st.floats(), st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e300, 5e-324, 9007199254740992.0]),
)


def whole(low: int, high: int) -> Values:
    return Values(st.integers(low, high), NUMBERS)


TIMES = Values(
    st.datetimes(min_value=datetime(2000, 1, 2), max_value=datetime(2026, 1, 1), timezones=OFFSETS),
    st.one_of(
        st.datetimes(timezones=OFFSETS),  # years 1..9999
        st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1)),  # naive
        st.sampled_from([
            datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
            datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1))),
            datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), datetime(2000, 1, 1, tzinfo=timezone(timedelta(hours=8))),
            datetime.now(UTC) + timedelta(hours=23), datetime.now(UTC) + timedelta(days=2),
        ]),
    ),
)
EMAILS = Values(st.emails(), st.from_regex(r"[^@\s]{1,20}@[^@\s]{1,20}", fullmatch=True))
PHONES = Values(st.from_regex(r"\+?[0-9 ()\-.]{3,20}", fullmatch=True), st.one_of(PLAIN, UNSTORABLE))
RATING = Values(
    st.sampled_from([("mot", -3, 3), ("csat", 1, 5), ("nps", 0, 10), ("stars", 1, 5)]).flatmap(
        lambda s: st.fixed_dictionaries({"scale": st.just(s[0]), "value": st.integers(s[1], s[2])})),
    st.fixed_dictionaries({"scale": st.sampled_from(["mot", "csat", "nps", "stars", "likert"]), "value": NUMBERS}),
)
ATTRIBUTES = Values(
    st.dictionaries(st.sampled_from(["order_id", "store", "渠道", "seat"]),
                    st.one_of(st.none(), st.booleans(), st.integers(-(2**53) + 1, 2**53 - 1), st.floats(-1e15, 1e15),
                              free_text(3).usual), max_size=3),
    st.dictionaries(st.one_of(key_text(64).usual, key_text(64).awkward),
                    st.one_of(NUMBERS, free_text(3).awkward, st.lists(st.integers(), max_size=2)), min_size=1,
                    max_size=3),
)
LANGUAGE = Values(st.sampled_from(["zh", "en", "zh-CN", "ja"]), key_text(8).awkward)

CUSTOMER = {"id": key_text(), "name": free_text(3), "email": EMAILS, "phone": PHONES}
ATTACHMENT = {"filename": free_text(2), "content_type": key_text(30), "size": whole(0, 10**7)}
DETAILS = {
    "web": (WebDetails, {"page_url": key_text(80), "user_agent": free_text(4), "form_id": key_text()}),
    "kiosk": (KioskDetails, {"device_id": key_text(), "face": whole(-3, 3)}),
    "email": (EmailDetails, {"message_id": key_text(), "sender": EMAILS, "recipient": EMAILS,
                             "subject": free_text(5), "attachments": None}),  # attachments: ATTACHMENT, below
    "phone": (PhoneDetails, {"agent_id": key_text(), "call_id": key_text(), "duration_seconds": whole(0, 3600),
                             "direction": Values(st.sampled_from(["inbound", "outbound"]), st.just("sideways"))}),
    "suggestion_box": (SuggestionBoxDetails, {"import_id": key_text(), "line": whole(1, 500), "card_id": key_text()}),
    "survey": (SurveyDetails, {"survey_id": key_text(), "response_id": key_text(), "question_id": key_text(),
                               "recovery_for_alert_id": key_text()}),
}
REQUIRED = {"survey_id", "content_type", "size"}
FEEDBACK_FIELDS = {
    "text": free_text(), "rating": RATING, "customer": None, "touchpoint": key_text(), "location": key_text(),
    "occurred_at": TIMES, "language": LANGUAGE, "attributes": ATTRIBUTES,
}


@st.composite
def fields_of(draw, fields: dict[str, Values], awkward: str | None, prefix: str = "") -> dict:
    """Values for some of ``fields`` (required ones always); the one named ``awkward`` gets an awkward value."""
    out = {}
    for name, values in fields.items():
        path = prefix + name
        if name not in REQUIRED and path != awkward and not draw(st.booleans()):
            continue
        out[name] = draw(values.awkward if path == awkward else values.usual)
    return out


@st.composite
def feedback_payloads(draw) -> dict:
    channel = draw(st.sampled_from([c.value for c in Channel]))
    details_of = channel if draw(st.integers(0, 9)) else draw(st.sampled_from(list(DETAILS)))  # others': refused
    paths = [f for f in FEEDBACK_FIELDS if FEEDBACK_FIELDS[f] is not None]
    paths += [f"customer.{f}" for f in CUSTOMER]
    paths += [f"{details_of}.{f}" for f, v in DETAILS[details_of][1].items() if v is not None]
    paths += [f"attachment.{f}" for f in ATTACHMENT] if details_of == "email" else []
    awkward = draw(st.one_of(st.none(), st.sampled_from(paths)))
    plain = {k: v for k, v in FEEDBACK_FIELDS.items() if v is not None}
    payload = {"channel": channel, **draw(fields_of(plain, awkward))}
    if "text" not in payload and "rating" not in payload and draw(st.integers(0, 9)):  # neither: refused
        payload["text"] = draw(free_text().usual)
    if awkward and awkward.startswith("customer.") or draw(st.booleans()):
        payload["customer"] = draw(fields_of(CUSTOMER, awkward, "customer."))
    if awkward and awkward.startswith(("attachment.", f"{details_of}.")) or draw(st.booleans()):
        details = {k: v for k, v in DETAILS[details_of][1].items() if v is not None}
        payload[details_of] = draw(fields_of(details, awkward, f"{details_of}."))
        if details_of == "email":
            many = 1 if awkward and awkward.startswith("attachment.") else draw(st.integers(0, 2))
            payload["email"]["attachments"] = [draw(fields_of(ATTACHMENT, awkward, "attachment.")) for _ in range(many)]
    # Nulls where the model allows them.
    for name in [n for n in payload if n not in ("channel", "attributes", "text", "rating") and n != awkward]:
        if not draw(st.integers(0, 9)):
            payload[name] = None
    return payload


UNSTORABLE_CHARS = re.compile(r"\\u00[01][0-9a-f]|\\ud[89a-f]", re.I)  # as json.dumps escapes them


def test_the_strategy_covers_every_field_of_the_model():
    assert set(FeedbackIn.model_fields) == {"channel", *FEEDBACK_FIELDS, *DETAILS}
    assert set(Customer.model_fields) == set(CUSTOMER)
    assert set(Attachment.model_fields) == set(ATTACHMENT)
    for _, (detail_model, fields) in DETAILS.items():
        assert set(detail_model.model_fields) == set(fields), detail_model.__name__


# --- intake's validation, three ways ----------------------------------------------------------------------------

def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value))


def intake_accepts(payload: dict) -> list[FeedbackIn]:
    """What intake makes of one payload: [] when refused, else the accepted feedback of each way in."""
    # ensure_ascii: lone surrogates travel as \\udXXX escapes, as a client would send them.
    body = json.dumps(payload, default=_json_default, ensure_ascii=True, allow_nan=True).encode()
    accepted = []
    try:
        single = FeedbackIn.model_validate_json(body)
    except ValidationError:
        single = None
    try:
        batch_item = FeedbackIn.model_validate(orjson.loads(body))
    except (orjson.JSONDecodeError, ValidationError):
        batch_item = None
    # One contract for both HTTP routes: they accept and refuse the same payloads alike.
    assert (single is None) == (batch_item is None), (payload, single, batch_item)
    if single is not None:
        assert single == batch_item
        accepted.append(single)
    try:
        accepted.append(FeedbackIn.model_validate(payload))  # Python values: CSV, survey, email
    except ValidationError:
        pass
    return accepted


def over_the_wire(feedback: FeedbackIn) -> Envelope:
    event = to_event(feedback, feedback_id=str(uuid.uuid4()), source="hypothesis", privacy_key=b"contract-test-key")
    return Envelope.from_kafka(headers=event.headers(), key=event.key_bytes(), value=event.value())


def test_the_reproducers_are_refused_with_clear_messages():
    cases = {
        "attributes.n": {"channel": "web", "text": "x", "attributes": {"n": 18446744073709551616}},
        "occurred_at": {"channel": "web", "text": "x", "occurred_at": "9999-12-31T23:59:59-14:00"},
        "location": {"channel": "web", "text": "x", "location": "store\u000012"},
    }
    for path, payload in cases.items():
        with pytest.raises(ValidationError) as refused:
            FeedbackIn.model_validate_json(json.dumps(payload))
        [error] = refused.value.errors()
        assert ".".join(map(str, error["loc"])) == path
    cleaned = FeedbackIn.model_validate_json(json.dumps({"channel": "web", "text": "排队\u0000两小时\u0007\n太久"}))
    assert cleaned.text == "排队两小时\n太久"


# --- the consumers, for real -------------------------------------------------------------------------------------

class Consumers:
    """Alerts and reporting built by their app factories, migrated, with their registered handlers."""

    def __init__(self, service_env: dict) -> None:
        alerts_env = {**service_env, "kafka_topic_prefix": service_env["kafka_topic_prefix"] + "a."}
        self.alerts = create_alerts(AlertsSettings(**alerts_env, mail_sender_enabled=False,
                                                   alerts_scheduler_enabled=False)).state.runtime
        self.reporting = create_reporting(ReportingSettings(**service_env)).state.runtime
        self.pools: dict[str, asyncpg.Pool] = {}
        self.scored: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        for runtime in (self.alerts, self.reporting):
            s = runtime.settings
            await migrate_dsn(s.dsn(), schema=s.schema, directory=runtime.migrations,
                              components=s.migration_components())
            self.pools[s.service_name] = await create_pool(s.dsn(), schema=s.schema, min_size=1, max_size=2)
        await self.alerts.publisher.start()  # alerts publishes feedback.scored.v1 directly
        s = self.alerts.settings
        topic = s.topic(FEEDBACK_SCORED.topic)
        await ensure_topics(s.kafka_bootstrap_servers, [topic], partitions=s.kafka_topic_partitions,
                            replication_factor=1)
        self.scored = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap_servers, group_id=None,
                                       enable_auto_commit=False)
        await self.scored.start()
        partitions = [TopicPartition(topic, p) for p in range(s.kafka_topic_partitions)]
        self.scored.assign(partitions)
        await self.scored.seek_to_beginning(*partitions)

    async def stop(self) -> None:
        if self.scored is not None:
            await self.scored.stop()
        await self.alerts.publisher.stop()
        for pool in self.pools.values():
            await pool.close()

    async def _handle(self, runtime, event_type, events: list[Envelope]) -> None:
        handler = runtime.registered_handlers()[event_type]
        async with self.pools[runtime.settings.service_name].acquire() as conn, conn.transaction():
            await handler(conn, events)

    async def process(self, received: list[Envelope]) -> int:
        """One consumer batch of received feedback through alerts, then everything it produced through
        reporting. Returns how many alert events (raised or updated) the batch produced."""
        await self._handle(self.alerts, FEEDBACK_RECEIVED, received)
        await self._handle(self.reporting, FEEDBACK_RECEIVED, received)
        await self._handle(self.reporting, FEEDBACK_SCORED, await self._scored_of({e.id for e in received}))
        alert_events = await self._alert_events()
        for event in alert_events:  # one by one, as reporting registered them
            await self._handle(self.reporting, ALERT_RAISED if event.type == ALERT_RAISED.type else ALERT_UPDATED,
                               [event])
        return len(alert_events)

    async def _scored_of(self, feedback_ids: set[str], timeout: float = 20.0) -> list[Envelope]:
        found: list[Envelope] = []
        deadline = asyncio.get_running_loop().time() + timeout
        while len(found) < len(feedback_ids):
            assert asyncio.get_running_loop().time() < deadline, "alerts' feedback.scored.v1 events never arrived"
            for messages in (await self.scored.getmany(timeout_ms=200)).values():
                for m in messages:
                    event = Envelope.from_kafka(headers=m.headers, key=m.key, value=m.value)
                    if event.data.feedback_id in feedback_ids:
                        found.append(event)
        return found

    async def _alert_events(self) -> list[Envelope]:
        """What alerts wrote to its outbox (taken out, as its relay would)."""
        rows = await self.pools["alerts"].fetch("DELETE FROM outbox RETURNING id, key, headers, value")
        events = []
        for row in sorted(rows, key=lambda r: r["id"]):
            headers = [(k, v.encode()) for k, v in json.loads(row["headers"])]
            event = Envelope.from_kafka(headers=headers, key=row["key"], value=row["value"])
            if event.type in (ALERT_RAISED.type, ALERT_UPDATED.type):
                events.append(event)
        return events


async def check_property(service_env: dict, inputs: st.SearchStrategy, to_events, *, examples: int) -> dict:
    """Hypothesis drives ``to_events`` over lists of ``inputs`` in a worker thread; each list's events go
    through the consumers here, in the test's loop (where the database pools and the broker client live)."""
    consumers = Consumers(service_env)
    await consumers.start()
    loop = asyncio.get_running_loop()
    seen = {"inputs": 0, "accepted": 0, "unstorable": 0, "alerted": 0}

    @settings(max_examples=examples, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(inputs, min_size=1, max_size=4))
    def property_holds(batch: list) -> None:
        received = [event for item in batch for event in to_events(item)]
        seen["inputs"] += len(batch)
        seen["accepted"] += len(received)
        seen["unstorable"] += sum(1 for item in batch if UNSTORABLE_CHARS.search(json.dumps(item, default=repr)))
        if received:
            seen["alerted"] += asyncio.run_coroutine_threadsafe(consumers.process(received), loop).result(timeout=60)

    try:
        await asyncio.to_thread(property_holds)
    finally:
        await consumers.stop()
    # The generator must reach the consumers often enough for the property to mean something (a bound
    # the random mix clears by far: about a quarter of generated mails are feedback, a sixth is required).
    assert seen["accepted"] >= max(10, seen["inputs"] // 6), seen
    return seen


async def test_anything_intake_accepts_every_consumer_processes(service_env):
    def to_events(payload: dict) -> list[Envelope]:
        # A consumer can always read what intake wrote (over_the_wire raises otherwise).
        return [over_the_wire(feedback) for feedback in intake_accepts(payload)]

    seen = await check_property(service_env, feedback_payloads(), to_events, examples=EXAMPLES)
    assert seen["unstorable"] >= seen["inputs"] // 10, seen
    # Negative ratings make alerts of much of it, so alerts stores arbitrary accepted text (and customer
    # details) in its alerts, feedback links and mails too, not only in its dedupe table (68 of 168 once).
    assert seen["alerted"] >= seen["accepted"] // 10, seen


# --- the email channel: raw mail in ----------------------------------------------------------------------------

def _header_text(value: str) -> bytes:
    """A header value as a sloppy client writes it: raw UTF-8, lone surrogates as invalid bytes."""
    return value.replace("\r", " ").replace("\n", " ").encode("utf-8", "surrogatepass")


@st.composite
def raw_mails(draw) -> bytes:
    def pick(values: Values) -> str:
        return draw(st.one_of(values.usual, values.awkward))

    when = draw(TIMES.usual | TIMES.awkward)
    date = when.strftime("%a, %d %b %Y %H:%M:%S ") + (when.strftime("%z") or "-0000")
    headers = [
        b"From: " + _header_text(pick(free_text(3))) + b" <" + _header_text(pick(EMAILS)) + b">",
        b"To: feedback@example.com, " + _header_text(pick(EMAILS)),
        b"Subject: " + _header_text(pick(free_text(5))),
        b"Message-ID: <" + _header_text(pick(key_text())) + b">",
        b"Date: " + date.encode(),
        b"Content-Type: text/plain; charset=" + draw(st.sampled_from([b"utf-8", b"gb2312", b"big5", b"x-unknown", b'""'])),
    ]
    body = pick(free_text(30)).encode(draw(st.sampled_from(["utf-8", "gb18030", "big5"])), "replace")
    return b"\r\n".join(headers) + b"\r\n\r\n" + body.replace(b"\n", b"\r\n")


async def test_any_mail_intake_accepts_every_consumer_processes(service_env):
    from services.intake.email.parse import FEEDBACK, parse_email

    def to_events(raw: bytes) -> list[Envelope]:
        mail = parse_email(raw)  # never raises
        if mail.status != FEEDBACK:
            return []
        # What the parser accepts holds the contract: to_feedback never refuses it.
        return [over_the_wire(mail.to_feedback(recipient="feedback@example.com"))]

    await check_property(service_env, raw_mails(), to_events, examples=40)
