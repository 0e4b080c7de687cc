"""``keymoment dlq``: list, show and replay dead letters.

Kafka dead letters (``<topic>.dlq``, written by every consumer group; RELIABILITY.md)::

    keymoment dlq list   [--topic T] [--since ISO] [--until ISO] [--id EVENT_ID] [--json]
    keymoment dlq show   EVENT_ID [--topic T]
    keymoment dlq replay (--id EVENT_ID ... | --since ISO [--until ISO] | --all) [--topic T] [--dry-run]

A replay publishes each selected letter to the topic it came from (``dlq_source_topic``) with its key,
its CloudEvents headers and its value as they were, so it keeps its event id: a consumer group that
already applied the event drops it (``processed_events``), the one that dead-lettered it applies it now
(or dead-letters it again if the cause is still there). Letters of one event written by several groups
are replayed once. Letters stay in the ``.dlq`` (Kafka's retention removes them).

Outbox rows Kafka refused (``outbox_dead_letters`` in a service's schema)::

    keymoment dlq outbox list   --service SERVICE
    keymoment dlq outbox replay --service SERVICE (--id ROW_ID ... | --all)

An outbox replay moves the rows back into the service's outbox; its relay publishes them (or sets them
aside again). Every Kafka client is built with the services' settings (``KAFKA_BOOTSTRAP_SERVERS``,
``KAFKA_TOPIC_PREFIX``, ``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ``KAFKA_SSL_CAFILE``); the outbox
commands read ``DATABASE_URL``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from shared.events import EVENT_TYPES, dlq_topic
from shared.settings import ServiceSettings

TOPICS = sorted({et.topic for et in EVENT_TYPES.values()})


class DlqSettings(ServiceSettings):
    """The services' Kafka and database settings, without the secrets only a service needs."""

    service_name: ClassVar[str] = "keymoment-dlq"
    required_secrets: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True)
class Letter:
    """One message of a ``.dlq`` topic."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    value: bytes

    def header(self, name: str) -> str:
        for k, v in self.headers:
            if k == name:
                return v.decode("utf-8", "replace")
        return ""

    @property
    def event_id(self) -> str:
        return self.header("ce_id")

    @property
    def source_topic(self) -> str:
        return self.header("dlq_source_topic") or self.dlq_topic.removesuffix(".dlq")

    @property
    def failed_at(self) -> datetime | None:
        try:
            return datetime.fromisoformat(self.header("dlq_failed_at"))
        except ValueError:
            return None

    def summary(self) -> dict:
        """What ``list`` shows: where it came from and why, never the event's content."""
        failed_at = self.failed_at
        return {
            "failed_at": failed_at.isoformat() if failed_at else None,
            "event_id": self.event_id or None,
            "type": self.header("ce_type") or None,
            "source": f"{self.source_topic}:{self.header('dlq_source_partition')}:{self.header('dlq_source_offset')}",
            "group": self.header("dlq_consumer_group"),
            "reason": self.header("dlq_reason") or "permanent",
            "error": self.header("dlq_error")[:200],
            "letter": f"{self.dlq_topic}:{self.partition}:{self.offset}",
        }

    def replayed(self) -> tuple[str, bytes | None, list[tuple[str, bytes]], bytes]:
        """The message as it was on its source topic (the ``dlq_*`` headers removed), marked as replayed."""
        headers = [(k, v) for k, v in self.headers if not k.startswith("dlq_") and k != "keymoment_replayed_from"]
        headers.append(("keymoment_replayed_from", f"{self.dlq_topic}:{self.partition}:{self.offset}".encode()))
        return self.source_topic, self.key, headers, self.value


@dataclass(frozen=True)
class Selection:
    topics: Sequence[str]  # logical names
    since: datetime | None = None
    until: datetime | None = None
    ids: frozenset[str] = frozenset()

    def wants(self, letter: Letter) -> bool:
        if self.ids and letter.event_id not in self.ids:
            return False
        at = letter.failed_at
        if self.since is not None and (at is None or at < self.since):
            return False
        return not (self.until is not None and (at is None or at >= self.until))


async def read_letters(settings: ServiceSettings, selection: Selection, *, timeout: float = 30.0) -> list[Letter]:
    """Every letter of the selected ``.dlq`` topics that matches, in topic, partition and offset order."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from shared.kafka_security import client_security

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, group_id=None,
                                enable_auto_commit=False, request_timeout_ms=int(timeout * 1000),
                                **client_security(settings))
    await consumer.start()
    try:
        existing = await consumer.topics()
        wanted = [dlq_topic(settings.topic(t)) for t in selection.topics]
        partitions = [TopicPartition(t, p) for t in wanted if t in existing
                      for p in sorted(consumer.partitions_for_topic(t) or ())]
        if not partitions:
            return []
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[Letter] = []
        async with asyncio.timeout(timeout):
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for tp, messages in (await consumer.getmany(timeout_ms=500)).items():
                    for m in messages:
                        if m.offset >= ends[tp]:
                            continue  # written after we started: the next run sees it
                        letter = Letter(tp.topic, tp.partition, m.offset, m.key, tuple(m.headers or ()), m.value or b"")
                        if selection.wants(letter):
                            letters.append(letter)
        return sorted(letters, key=lambda x: (x.dlq_topic, x.partition, x.offset))
    finally:
        await consumer.stop()


async def replay(settings: ServiceSettings, letters: Sequence[Letter]) -> list[Letter]:
    """Publish each event once to its source topic; returns the letters replayed (one per event)."""
    from shared.kafka import Publisher
    from shared.kafka_security import client_security

    once: dict[tuple[str, str], Letter] = {}
    for letter in letters:
        once.setdefault((letter.source_topic, letter.event_id or letter.dlq_topic + str(letter.offset)), letter)
    chosen = list(once.values())
    if not chosen:
        return []
    publisher = Publisher(settings.kafka_bootstrap_servers, client_id="keymoment-dlq", send_timeout=30.0,
                          security=client_security(settings))
    await publisher.start()
    try:
        await publisher.send_raw_batch([letter.replayed() for letter in chosen])
    finally:
        await publisher.stop()
    return chosen


# ------------------------------------------------------------------------------------------ outbox
async def outbox_letters(settings: ServiceSettings, schema: str) -> list[dict]:
    import asyncpg

    conn = await asyncpg.connect(settings.dsn())
    try:
        rows = await conn.fetch(
            f"""SELECT id, topic, failed_at, reason, error, length(value) AS bytes, headers
                FROM {_schema(schema)}.outbox_dead_letters ORDER BY id""")  # noqa: S608 - quoted identifier
    finally:
        await conn.close()
    out = []
    for r in rows:
        headers = dict(json.loads(r["headers"])) if r["headers"].startswith("[") else {}
        out.append({"id": r["id"], "topic": r["topic"], "failed_at": r["failed_at"].isoformat(),
                    "reason": r["reason"], "event_id": headers.get("ce_id"), "type": headers.get("ce_type"),
                    "bytes": r["bytes"], "error": r["error"][:200]})
    return out


async def outbox_replay(settings: ServiceSettings, schema: str, ids: Sequence[int] | None) -> int:
    """Move set-aside rows back into the outbox (``ids`` None: all); returns how many."""
    import asyncpg

    from shared.outbox import NOTIFY_CHANNEL

    quoted = _schema(schema)
    conn = await asyncpg.connect(settings.dsn())
    try:
        async with conn.transaction():
            moved = await conn.fetch(
                f"""DELETE FROM {quoted}.outbox_dead_letters WHERE $1::bigint[] IS NULL OR id = ANY($1::bigint[])
                    RETURNING id, topic, key, headers, value, created_at""",  # noqa: S608 - quoted identifier
                list(ids) if ids is not None else None)
            await conn.executemany(
                f"INSERT INTO {quoted}.outbox (topic, key, headers, value, created_at) VALUES ($1, $2, $3, $4, $5)",
                [(r["topic"], r["key"], r["headers"], r["value"], r["created_at"]) for r in sorted(moved, key=lambda r: r["id"])])
            await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    finally:
        await conn.close()
    return len(moved)


def _schema(name: str) -> str:
    if not name.replace("_", "").isalnum():
        raise SystemExit(f"keymoment dlq: not a schema name: {name!r}")
    return f'"{name}"'


# ------------------------------------------------------------------------------------------ command line
def _time(value: str) -> datetime:
    at = datetime.fromisoformat(value)
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keymoment dlq", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def selection(p: argparse.ArgumentParser, *, ids: bool = True) -> None:
        p.add_argument("--topic", action="append", choices=TOPICS, default=[],
                       help="source topic (logical name; repeat for several); default: all")
        p.add_argument("--since", type=_time, help="dead-lettered at or after (ISO 8601; UTC if no offset)")
        p.add_argument("--until", type=_time, help="dead-lettered before (ISO 8601)")
        if ids:
            p.add_argument("--id", action="append", default=[], help="event id (ce_id); repeat for several")

    listing = sub.add_parser("list", help="one line per dead letter: when, where from, which group, why")
    selection(listing)
    listing.add_argument("--json", action="store_true", help="JSON lines instead of a table")
    show = sub.add_parser("show", help="an event's dead letters in full (headers and value)")
    show.add_argument("event_id")
    show.add_argument("--topic", action="append", choices=TOPICS, default=[])
    again = sub.add_parser("replay", help="publish dead letters to their source topic with their event ids")
    selection(again)
    again.add_argument("--all", action="store_true", help="every letter of the selected topics")
    again.add_argument("--dry-run", action="store_true", help="list what would be replayed, publish nothing")
    outbox = sub.add_parser("outbox", help="outbox rows Kafka refused, set aside by a service's relay")
    outbox.add_argument("action", choices=["list", "replay"])
    outbox.add_argument("--service", required=True, help="intake, survey, alerts or reporting (its schema)")
    outbox.add_argument("--schema", help="the service's schema if not named after it")
    outbox.add_argument("--id", action="append", type=int, default=[], help="row id (replay; repeat)")
    outbox.add_argument("--all", action="store_true", help="replay every row set aside")
    return parser


def run(argv: Sequence[str], settings: ServiceSettings) -> int:
    args = _parser().parse_args(list(argv))
    return asyncio.run(_run(args, settings))


async def _run(args: argparse.Namespace, settings: ServiceSettings) -> int:
    if args.command == "outbox":
        schema = args.schema or args.service
        if args.action == "list":
            for row in await outbox_letters(settings, schema):
                print(json.dumps(row, ensure_ascii=False))
            return 0
        if not args.id and not args.all:
            print("keymoment dlq outbox replay: give --id (repeatable) or --all", file=sys.stderr)
            return 2
        moved = await outbox_replay(settings, schema, None if args.all else args.id)
        print(f"{moved} row(s) back in {schema}'s outbox")
        return 0
    if args.command == "show":
        letters = await read_letters(settings, Selection(args.topic or TOPICS, ids=frozenset([args.event_id])))
        if not letters:
            print(f"keymoment dlq: no dead letter of event {args.event_id}", file=sys.stderr)
            return 1
        for letter in letters:
            print(json.dumps({**letter.summary(), "key": letter.key.decode("utf-8", "replace") if letter.key else None,
                              "headers": {k: v.decode("utf-8", "replace") for k, v in letter.headers},
                              "value": _value(letter.value)}, ensure_ascii=False, indent=2))
        return 0
    chosen = Selection(args.topic or TOPICS, since=args.since, until=args.until, ids=frozenset(args.id))
    if args.command == "replay" and not (args.id or args.since or args.until or args.all):
        print("keymoment dlq replay: choose letters with --id, --since/--until, or --all", file=sys.stderr)
        return 2
    letters = await read_letters(settings, chosen)
    if args.command == "list":
        for letter in letters:
            s = letter.summary()
            print(json.dumps(s, ensure_ascii=False) if args.json else
                  f"{s['failed_at'] or '?':32}  {s['source']:40}  {s['group']:10}  {s['reason']:15}  "
                  f"{s['type'] or '?'}  {s['event_id'] or '?'}  {s['error'][:80]}")
        return 0
    if args.dry_run:
        for letter in letters:
            print(f"would replay {letter.event_id or '?'} to {letter.source_topic}")
        return 0
    done = await replay(settings, letters)
    for letter in done:
        print(f"replayed {letter.event_id or '?'} to {letter.source_topic}")
    print(f"{len(done)} event(s) replayed from {len(letters)} letter(s)")
    return 0


def _value(raw: bytes) -> object:
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")


def main(argv: list[str] | None = None) -> int:
    return run(sys.argv[1:] if argv is None else argv, DlqSettings())


if __name__ == "__main__":
    raise SystemExit(main())
