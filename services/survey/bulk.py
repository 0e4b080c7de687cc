"""Bulk invitation uploads: NDJSON (one invitation per line) or CSV (a header row and one
invitation per row), read into rows for ``POST /v1/invitations/bulk``.

CSV columns (case and spaces ignored; Chinese headers as Excel users write them):

| column | also | meaning |
|---|---|---|
| `key` | `idempotency_key`, `编号` | idempotency key of the row |
| `customer_id` | `id`, `客户编号` | the customer's id in your systems |
| `email` | `邮箱`, `电子邮件` | where the invitation goes |
| `phone` | `手机`, `电话` | |
| `name` | `姓名` | greets the customer |
| `time_zone` | `时区` | IANA name, e.g. Asia/Shanghai |
| `locale` | `language`, `语言` | zh-CN or en first |
| `touchpoint` | `触点` | |
| `location` | `门店`, `地点` | |
| `context.<name>` | `ctx.<name>` | free context, e.g. `context.order_id` |

A row without a key gets none from the server (not idempotent); the ``keymoment survey
invite`` command gives every row one derived from its content.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from typing import Any

import orjson

from shared.tabular import decode_text, delimiter

MAX_ROWS = 10_000
MAX_BYTES = 16 * 1024 * 1024

ALIASES = {
    "key": "key", "idempotencykey": "key", "编号": "key",
    "customerid": "id", "id": "id", "客户编号": "id", "客户id": "id",
    "email": "email", "邮箱": "email", "电子邮件": "email", "邮件": "email",
    "phone": "phone", "手机": "phone", "电话": "phone", "手机号": "phone",
    "name": "name", "姓名": "name", "客户姓名": "name",
    "timezone": "time_zone", "时区": "time_zone",
    "locale": "locale", "language": "locale", "语言": "locale",
    "touchpoint": "touchpoint", "触点": "touchpoint",
    "location": "location", "门店": "location", "地点": "location",
}
CUSTOMER = ("id", "email", "phone", "name", "time_zone")
_CONTEXT = re.compile(r"^(?:context|ctx|上下文)[.:](.+)$", re.IGNORECASE)


class BulkError(ValueError):
    """The upload as a whole cannot be read."""


@dataclass(frozen=True)
class Row:
    number: int  # 1-based; a CSV's header is row 0
    data: dict[str, Any] | None  # an invitation's fields, or None when the row could not be read
    error: str | None = None


def _norm(name: str) -> str:
    return re.sub(r"[\s_\-]", "", name.strip().lstrip("\ufeff").lower())


def parse_ndjson(body: bytes, survey_id: str) -> list[Row]:
    rows: list[Row] = []
    for number, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        if len(rows) >= MAX_ROWS:
            raise BulkError(f"more than {MAX_ROWS} rows; split the upload")
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            rows.append(Row(number, None, f"not JSON: {exc}"))
            continue
        if not isinstance(data, dict):
            rows.append(Row(number, None, "a row is a JSON object"))
            continue
        if data.setdefault("survey_id", survey_id) != survey_id:
            rows.append(Row(number, None, f"survey_id: this upload is for survey {survey_id!r}"))
            continue
        rows.append(Row(number, data))
    return rows


def parse_csv(body: bytes, survey_id: str) -> list[Row]:
    try:
        text, _ = decode_text(body)
    except ValueError as exc:
        raise BulkError(str(exc)) from exc
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise BulkError("the file is empty") from None
    columns: dict[int, tuple[str, str]] = {}  # index -> ("field" | "context", name)
    for index, name in enumerate(header):
        if match := _CONTEXT.match(name.strip()):
            columns[index] = ("context", match.group(1).strip())
        elif canonical := ALIASES.get(_norm(name)):
            columns[index] = ("field", canonical)
    if not {name for kind, name in columns.values() if kind == "field"} & {"email", "id", "phone"}:
        raise BulkError("no customer column: the header needs email (or customer_id, phone)")
    rows: list[Row] = []
    for number, cells in enumerate(reader, start=1):
        if not any(cell.strip() for cell in cells):
            continue
        if len(rows) >= MAX_ROWS:
            raise BulkError(f"more than {MAX_ROWS} rows; split the file")
        if len(cells) > len(header):
            rows.append(Row(number, None, f"{len(cells)} cells but the header has {len(header)} columns"))
            continue
        data: dict[str, Any] = {"survey_id": survey_id, "customer": {}, "context": {}}
        for index, cell in enumerate(cells):
            value = cell.strip()
            if not value or index not in columns:
                continue
            kind, name = columns[index]
            if kind == "context":
                data["context"][name] = value
            elif name in CUSTOMER:
                data["customer"][name] = value
            else:
                data[name] = value
        rows.append(Row(number, data))
    return rows


def parse(body: bytes, content_type: str, survey_id: str) -> list[Row]:
    """The rows of an upload by its media type: ``application/x-ndjson`` (or ``application/jsonl``)
    or ``text/csv``."""
    if len(body) > MAX_BYTES:
        raise BulkError(f"the upload is {len(body)} bytes; the limit is {MAX_BYTES}")
    if content_type in ("application/x-ndjson", "application/jsonl", "application/json-seq", "application/ndjson"):
        return parse_ndjson(body, survey_id)
    if content_type in ("text/csv", "application/csv"):
        return parse_csv(body, survey_id)
    raise BulkError("send text/csv or application/x-ndjson")
