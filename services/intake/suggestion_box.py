"""Transcribed suggestion-box cards from CSV to feedback.

Pure parsing, no I/O: detect the encoding (UTF-8, UTF-8 with BOM, GBK/GB18030),
map English or Chinese column headers, turn each row into a :class:`FeedbackIn`
or a rejection with its line number, and give every card a deterministic
idempotency key so that importing the same file again creates nothing new.

"The same card" is the same normalised content (date, location, touchpoint,
text, rating, contact) seen for the same time in the file - the first, second
... identical card - or, when the file has a ``card_id`` column, that id. Line
numbers are deliberately not part of it: re-exporting the sheet with a row
added or rows re-sorted must not duplicate the cards already imported.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from shared.contracts import Channel, Customer, FeedbackIn, Rating, RatingScale, SuggestionBoxDetails
from shared.tabular import UndecodableFile, decode_text, delimiter, error_message

MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
DEFAULT_SCALE = RatingScale.STARS

# Canonical column -> accepted header spellings (compared lower-cased, without spaces, "_" or "-").
COLUMNS: dict[str, tuple[str, ...]] = {
    "date": ("date", "occurredat", "datetime", "日期", "时间", "日期时间", "填写日期"),
    "location": ("location", "store", "branch", "site", "地点", "门店", "网点", "分店", "位置"),
    "text": ("text", "comment", "comments", "feedback", "suggestion", "内容", "意见", "建议", "留言", "反馈"),
    "touchpoint": ("touchpoint", "环节", "接触点", "服务环节"),
    "rating": ("rating", "score", "stars", "评分", "分数", "星级", "满意度"),
    "scale": ("scale", "ratingscale", "量表", "评分类型"),
    "contact_name": ("contactname", "name", "contact", "联系人", "姓名"),
    "contact_email": ("contactemail", "email", "邮箱", "电子邮件", "电子邮箱"),
    "contact_phone": ("contactphone", "phone", "mobile", "电话", "手机", "联系电话"),
    "card_id": ("cardid", "card", "卡号", "编号", "卡片编号"),
}
_ALIASES = {alias: canonical for canonical, aliases in COLUMNS.items() for alias in aliases}


class CsvImportError(ValueError):
    """The file as a whole cannot be imported (encoding, no header, no text/rating column)."""


@dataclass
class Card:
    line: int
    feedback: FeedbackIn
    idempotency_key: str


@dataclass
class RejectedRow:
    line: int
    errors: list[str]


@dataclass
class ParsedFile:
    encoding: str
    import_id: str
    cards: list[Card] = field(default_factory=list)
    rejected: list[RejectedRow] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def decode(data: bytes) -> tuple[str, str]:
    """The file's text and the encoding it was read as (``shared.tabular.decode_text``)."""
    try:
        return decode_text(data)
    except UndecodableFile as exc:
        raise CsvImportError(str(exc)) from exc


def _norm_header(name: str) -> str:
    return re.sub(r"[\s_\-（）()]", "", name.strip().lstrip("\ufeff").lower())


def parse_csv(data: bytes, *, source_key: str, timezone: str = "UTC", default_scale: RatingScale = DEFAULT_SCALE) -> ParsedFile:
    """Cards and per-row rejections of one CSV file."""
    if len(data) > MAX_FILE_BYTES:
        raise CsvImportError(f"the file is {len(data)} bytes; the limit is {MAX_FILE_BYTES}")
    try:
        tz = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CsvImportError(f"unknown timezone {timezone!r}") from exc
    text, encoding = decode(data)
    import_id = "csv-" + hashlib.sha256(data).hexdigest()[:16]  # names the file, not the cards
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter(text))
    try:
        header = next(reader)
    except StopIteration:
        raise CsvImportError("the file is empty") from None
    columns: dict[int, str] = {}
    parsed = ParsedFile(encoding=encoding, import_id=import_id)
    for index, name in enumerate(header):
        canonical = _ALIASES.get(_norm_header(name))
        if canonical and canonical not in columns.values():
            columns[index] = canonical
        elif name.strip():
            parsed.ignored_columns.append(name.strip())
    if "text" not in columns.values() and "rating" not in columns.values():
        raise CsvImportError(
            "no text or rating column; expected headers such as date, location, text, rating "
            "(or 日期, 地点, 内容, 评分)"
        )
    seen: dict[str, int] = {}
    line = reader.line_num + 1
    for count, row in enumerate(reader, start=1):
        start, line = line, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if count > MAX_ROWS:
            parsed.rejected.append(RejectedRow(start, [f"more than {MAX_ROWS} rows in one file; split it"]))
            break
        values = {columns[i]: cell.strip() for i, cell in enumerate(row) if i in columns and cell.strip()}
        errors: list[str] = []
        if len(row) > len(header):
            errors.append(f"{len(row)} cells but the header has {len(header)} columns")
        try:
            details = SuggestionBoxDetails(import_id=import_id, line=start, card_id=values.get("card_id"))
            feedback = _feedback(values, details, tz=tz, default_scale=default_scale, errors=errors)
        except ValidationError as exc:
            errors += [error_message(e) for e in exc.errors()]
            feedback = None
        if errors or feedback is None:
            parsed.rejected.append(RejectedRow(start, errors or ["row has no usable values"]))
            continue
        identity = card_identity(values)
        seen[identity] = seen.get(identity, 0) + 1
        key = _idempotency_key(source_key, identity, seen[identity], values.get("card_id"))
        parsed.cards.append(Card(start, feedback, key))
    return parsed


def card_identity(values: dict[str, str]) -> str:
    content = {k: " ".join(v.split()) for k, v in sorted(values.items()) if k != "card_id"}
    return json.dumps(content, ensure_ascii=False, sort_keys=True)


def _idempotency_key(source_key: str, identity: str, occurrence: int, card_id: str | None) -> str:
    basis = f"card-id:{card_id}" if card_id else f"card:{identity}#{occurrence}"
    return "suggestion-box:" + hashlib.sha256(f"{source_key}\n{basis}".encode()).hexdigest()[:40]


_DATE_FORMATS = (
    "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d %H:%M:%S",
    "%Y/%m/%d %H:%M:%S", "%d.%m.%Y", "%Y%m%d",
)
_CN_DATE = re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日(?:\s*(\d{1,2})[:：时](\d{2})分?)?$")


def parse_date(value: str, tz: ZoneInfo) -> datetime:
    value = value.strip()
    if m := _CN_DATE.match(value):
        y, mo, d, hh, mm = m.groups()
        return datetime(int(y), int(mo), int(d), int(hh or 0), int(mm or 0), tzinfo=tz)
    try:
        when = datetime.fromisoformat(value)
        return when if when.tzinfo else when.replace(tzinfo=tz)
    except ValueError:
        pass
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=tz)
        except ValueError:
            continue
    raise ValueError(f"date: cannot read {value!r}; use YYYY-MM-DD, YYYY/MM/DD or 2026年5月1日 (optionally with HH:MM)")


_SCALE_ALIASES = {"mot": "mot", "csat": "csat", "nps": "nps", "stars": "stars", "star": "stars", "星": "stars", "星级": "stars"}


def parse_rating(value: str, scale: str | None, default_scale: RatingScale) -> Rating:
    value = value.strip()
    stars = value.count("★")
    if stars and not value.strip("★☆ "):
        return Rating(scale=RatingScale.STARS, value=stars)
    m = re.fullmatch(r"([+-]?\d+)\s*(?:/\s*(\d+)|分|星)?", value)
    if not m:
        raise ValueError(f"rating: cannot read {value!r}; use a whole number, e.g. 4 or 4/5")
    number, out_of = int(m.group(1)), m.group(2)
    if scale:
        name = _SCALE_ALIASES.get(scale.strip().lower())
        if name is None:
            raise ValueError(f"scale: unknown {scale!r}; use mot, csat, nps or stars")
        chosen = RatingScale(name)
    elif out_of == "10":
        chosen = RatingScale.NPS
    elif out_of in (None, "5"):
        chosen = default_scale
    else:
        raise ValueError(f"rating: out of {out_of} is not a supported scale")
    return Rating(scale=chosen, value=number)


def _feedback(
    values: dict[str, str], details: SuggestionBoxDetails, *, tz: ZoneInfo, default_scale: RatingScale, errors: list[str]) -> FeedbackIn | None:
    occurred_at = rating = None
    if "date" in values:
        try:
            occurred_at = parse_date(values["date"], tz)
        except ValueError as exc:
            errors.append(str(exc))
    if "rating" in values:
        try:
            rating = parse_rating(values["rating"], values.get("scale"), default_scale)
        except ValidationError as exc:
            errors += ["rating: " + error_message({**e, "loc": ()}) for e in exc.errors()]
        except ValueError as exc:
            errors.append(str(exc))
    if errors:
        return None
    contact = {k: values[f"contact_{k}"] for k in ("name", "email", "phone") if f"contact_{k}" in values}
    return FeedbackIn(
        channel=Channel.SUGGESTION_BOX,
        text=values.get("text"),
        rating=rating,
        customer=Customer(**contact) if contact else None,
        touchpoint=values.get("touchpoint"),
        location=values.get("location"),
        occurred_at=occurred_at,
        suggestion_box=details,
    )


