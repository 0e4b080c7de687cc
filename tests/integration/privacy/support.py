"""Looking for a person in every table of every schema, as stored: text, JSON, arrays and bytes,
mail bytes decoded as a mail client would (RFC 2047 headers, base64 and quoted-printable bodies,
any charset)."""

from __future__ import annotations

import email
import email.policy
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg

SYSTEM_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast")


@dataclass(frozen=True)
class Needle:
    """What to look for: ``text`` case-insensitively, or a phone number by its digits."""

    text: str
    digits: bool = False

    def found_in(self, haystack: str) -> bool:
        if self.digits:
            wanted = re.sub(r"\D", "", self.text)
            return wanted in re.sub(r"\D", "", haystack)
        return self.text.casefold() in haystack.casefold()


@dataclass(frozen=True)
class Hit:
    schema: str
    table: str
    column: str
    needle: str
    how: str  # plain | bytes | mail

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}.{self.column} holds {self.needle!r} ({self.how})"


def _mail_texts(raw: bytes) -> Iterator[str]:
    """What a mail client shows of a message: every header decoded, every text part decoded."""
    try:
        message = email.message_from_bytes(raw, policy=email.policy.default)
    except Exception:  # not a mail
        return
    if not message.keys():
        return
    for name, value in message.items():
        yield f"{name}: {value}"  # str() of a header under policy.default decodes RFC 2047 words
    for part in message.walk():
        if part.get_content_maintype() == "text":
            try:
                yield part.get_content()  # base64 / quoted-printable and the charset decoded
            except (LookupError, UnicodeError):
                yield part.get_payload(decode=True).decode("utf-8", "replace")


def _texts(value: Any) -> Iterator[tuple[str, str]]:
    """``(text, how)`` a stored value can show."""
    if value is None:
        return
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        yield raw.decode("utf-8", "replace"), "bytes"
        yield raw.decode("latin-1"), "bytes"
        for text in _mail_texts(raw):
            yield text, "mail"
        return
    if isinstance(value, list | tuple):
        for item in value:
            yield from _texts(item)
        return
    text = str(value)
    yield text, "plain"
    if text[:1] in "[{":  # JSON: also as characters, whatever the escaping
        try:
            yield json.dumps(json.loads(text), ensure_ascii=False), "plain"
        except ValueError:
            pass


async def tables(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        """SELECT table_schema, table_name FROM information_schema.tables
           WHERE table_type = 'BASE TABLE' AND table_schema <> ALL($1::text[]) ORDER BY 1, 2""",
        list(SYSTEM_SCHEMAS),
    )
    return [(r["table_schema"], r["table_name"]) for r in rows]


async def search(conn: asyncpg.Connection, needles: list[Needle]) -> list[Hit]:
    """Every place a needle is stored, in every table of every schema of the database."""
    hits: set[Hit] = set()
    for schema, table in await tables(conn):
        for row in await conn.fetch(f'SELECT * FROM "{schema}"."{table}"'):
            for column, value in row.items():
                for text, how in _texts(value):
                    for needle in needles:
                        if needle.found_in(text):
                            hits.add(Hit(schema, table, column, needle.text, how))
    return sorted(hits, key=str)
