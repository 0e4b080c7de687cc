"""RFC 822 mail to feedback, as a mail client would read it.

* **Charsets, per part.** Each body part and each RFC 2047 encoded word is
  decoded with its own declared charset (widened to the superset real mail
  uses: GB2312/GBK as GB18030, Big5 as Big5-HKSCS, Latin-1 as Windows-1252);
  a byte that is invalid there becomes U+FFFD. One bad byte never sends a
  whole body to another charset. Only a part whose declared UTF-8 is invalid
  for most of its non-ASCII bytes is taken as mislabelled and read as
  GB18030 or Windows-1252, whichever its bytes fit; undeclared 8-bit text
  (raw headers included) is read as UTF-8, else GB18030, else Windows-1252 by
  the same test.
* **Addresses before names.** The From header is split into addresses while
  still encoded, and only then are display names decoded, so "Wang, Fang
  (王芳)" or "Müller, Hans" in an encoded word is one valid sender.
* **The visible text.** ``multipart/alternative`` shows its text/plain part
  (its HTML one when the plain part is empty or a "use an HTML mail program"
  placeholder); the inline text parts of a ``multipart/mixed`` are joined in
  order; ``multipart/related`` shows its root. HTML becomes text; quoted
  replies and signatures are cut (:mod:`services.intake.email.text`).
* **Machine mail** (auto-replies, delivery reports) is recognised and never
  becomes feedback. Attachments are measured, never kept.
* **Bounded work.** At most :data:`MAX_BODY_CHARS` of plain text and
  :data:`MAX_HTML_CHARS` of HTML are examined per message.

Nothing here raises on bad input: a message that cannot be feedback comes
back with ``status="rejected"`` and the reason. What the contract
(:mod:`shared.contracts`) would refuse in a header (a control character in an
address, a date outside its range) is dropped, not the complaint; a Message-ID
with control characters refuses the message, since it cannot be recorded.
"""

from __future__ import annotations

import codecs
import email.utils
import hashlib
import html
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from email.header import decode_header
from email.message import Message
from email.policy import compat32
from email.utils import getaddresses, parsedate_to_datetime

from services.intake.email.text import drop_uuencoded, html_to_text, strip_reply, unflow
from services.intake.language import detect
from shared.contracts import (
    EARLIEST, LATEST, MAX_FUTURE, MAX_TEXT_CHARS, Attachment, Channel, Customer, EmailDetails, FeedbackIn,
    clean_text, unstorable_character,
)

logger = logging.getLogger(__name__)

FEEDBACK = "accepted"
AUTO_REPLY = "auto_reply"
REJECTED = "rejected"

MAX_BODY_CHARS = 10 * MAX_TEXT_CHARS  # plain text examined for the new part of a message
MAX_HTML_CHARS = 2_000_000  # HTML parsed at most (markup is most of an HTML body)
MAX_ATTACHMENTS = 100

# Labels real mail uses for a narrower charset than it contains, and labels Python does not know.
_CHARSET_ALIASES = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "cp936": "gb18030", "euc-cn": "gb18030",
    "csgb2312": "gb18030", "x-euc-cn": "gb18030", "gb_2312-80": "gb18030", "chinese": "gb18030", "gb18030": "gb18030",
    "big5": "big5hkscs", "x-big5": "big5hkscs", "cp950": "big5hkscs", "big5-hkscs": "big5hkscs",
    "ks_c_5601-1987": "cp949", "euc-kr": "cp949", "shift_jis": "cp932", "x-sjis": "cp932",
    "iso-8859-1": "cp1252", "latin1": "cp1252", "latin-1": "cp1252", "iso8859-1": "cp1252", "windows-1252": "cp1252",
    "utf8": "utf-8", "utf-8": "utf-8",
}
# Labels that say nothing about 8-bit bytes: treated as undeclared.
_UNDECLARED = {"", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown", "default", "x-user-defined"}
_AUTO_SUBJECTS = (
    "自动回复", "自動回覆", "自动答复", "automatic reply", "auto reply", "autoreply", "auto-reply", "out of office",
    "undeliverable", "undelivered mail", "delivery status notification", "mail delivery failed", "退信", "系统退信",
    "read: ", "已读：", "已读:", "已讀：", "已讀:",  # read receipts (Outlook sends them as TNEF, not as a report)
)
_BOUNCE_SENDERS = ("mailer-daemon", "postmaster")
_ADDRESS = re.compile(r"^[^@\s<>]{1,64}@[^@\s<>]{1,255}$")
_HTML_PLACEHOLDER = re.compile(r"(html (capable|compatible|enabled)|HTML-capable|html message|HTML 格式|HTML格式)", re.I)
_ESCAPED_HTML = re.compile(r"&(nbsp|gt|lt|amp|quot|#\d{2,5});")
_ANGLE_ADDRESS = re.compile(r"^(?P<name>[^<>]*)<\s*(?P<address>[^<>\s]+)\s*>[^<>@]*$", re.S)


# --- charsets ---------------------------------------------------------------------------------------------------


def _codec(charset: str | None) -> str | None:
    """The Python codec for a declared charset, None when undeclared or unknown."""
    if not charset:
        return None
    name = charset.strip().strip('"').strip("'").lower()
    if name in _UNDECLARED:
        return None
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return name


def _mostly_invalid_utf8(data: bytes) -> bool:
    """More than half of the non-ASCII byte sequences are invalid UTF-8: not UTF-8 text with a few bad bytes."""
    decoded = data.decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd") - data.decode("utf-8", errors="ignore").count("\ufffd")
    high = sum(1 for ch in decoded if ord(ch) > 0x7F)
    return bad * 2 > high


def _looks_like_gb(text: str) -> bool:
    """GB18030 decoding produced Chinese text, not Latin-1 bytes paired up into ideographs: in real GBK
    text both bytes of a character are high bytes; 'ö' followed by 's' would pair a high and an ASCII byte."""
    chars = [ch for ch in text if ord(ch) > 0x7F]
    if not chars:
        return True
    paired_with_ascii = sum(1 for ch in chars if len(enc := ch.encode("gb18030")) == 2 and enc[1] < 0x80)
    return paired_with_ascii * 5 <= len(chars)


def _guess(data: bytes) -> str:
    """Text of bytes in an unknown charset: UTF-8, else GB18030, else Windows-1252."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if not _mostly_invalid_utf8(data):
        return data.decode("utf-8", errors="replace")
    try:
        text = data.decode("gb18030")
        if _looks_like_gb(text):
            return text
    except UnicodeDecodeError:
        pass
    return data.decode("cp1252", errors="replace")


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode one part (or one encoded word) with its declared charset; invalid bytes become U+FFFD."""
    codec = _codec(charset)
    if codec is None:
        return _guess(data)
    if codec == "utf-8":
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            # A few bad bytes: replacement characters. Mostly invalid: the label is wrong.
            return _guess(data) if _mostly_invalid_utf8(data) else data.decode("utf-8", errors="replace")
    if codec == "cp1252" and not data.isascii():
        try:
            return data.decode("utf-8")  # valid multi-byte UTF-8 is never real Latin-1 text: a mislabel
        except UnicodeDecodeError:
            pass
    return data.decode(codec, errors="replace")


# --- headers ----------------------------------------------------------------------------------------------------


def header(msg: Message, name: str) -> str:
    """The first ``name`` header decoded, raw 8-bit bytes included (``Message.get`` would mangle them)."""
    values = raw_headers(msg, name)
    return decode_header_value(values[0]) if values else ""


def headers(msg: Message, name: str) -> list[str]:
    return [decode_header_value(v) for v in raw_headers(msg, name)]


def raw_headers(msg: Message, name: str) -> list[str]:
    lowered = name.lower()
    return [str(v) for k, v in msg.raw_items() if k.lower() == lowered]


def _unsmuggle(raw: str) -> str:
    """Raw 8-bit header bytes (carried as surrogate escapes) as text."""
    if any("\udc80" <= ch <= "\udcff" for ch in raw):
        return _guess(raw.encode("ascii", "surrogateescape"))
    return raw


def decode_header_value(value: object) -> str:
    """An RFC 2047 header as text, each encoded word in its own charset; whitespace collapsed."""
    if value is None:
        return ""
    raw = _unsmuggle(str(value))
    try:
        parts = decode_header(raw)
    except Exception:
        return " ".join(raw.split())
    out = [decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk for chunk, charset in parts]
    return " ".join("".join(out).split())


def parse_address(value: str) -> tuple[str, str]:
    """``(display name, address)`` of a From-style header, split while still encoded (an encoded word
    never holds a bare comma or angle bracket), then the name decoded. ``("", "")`` when there is none."""
    raw = " ".join(_unsmuggle(value).split())
    angle = _ANGLE_ADDRESS.match(raw) if raw.count("<") == 1 else None
    if angle:  # "Name <addr>": the name is everything before, commas included (quoted or not)
        name, address = angle["name"].strip(), angle["address"]
    else:
        candidates = [(n, a) for n, a in getaddresses([raw]) if "@" in a]
        if not candidates:
            return "", ""
        name, address = candidates[0]
    name = decode_header_value(name).strip()
    if len(name) >= 2 and name[0] == name[-1] == '"':  # a quoted name (or an encoded word quoted)
        name = name[1:-1].replace('\\"', '"').replace("\\\\", "\\").strip()
    return name, address.strip()


def _date(msg: Message) -> datetime | None:
    """The Date header when the contract can hold it (offset given, 2000 up to a day from now)."""
    value = msg.get("Date")
    if not value:
        return None
    try:
        when = parsedate_to_datetime(str(value))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None or not EARLIEST <= when < min(LATEST, datetime.now(UTC) + MAX_FUTURE):
        return None
    return when


# --- the message ------------------------------------------------------------------------------------------------


@dataclass
class ParsedEmail:
    status: str  # accepted (it is feedback) | auto_reply | rejected
    key: str  # the dedupe key: the Message-ID (with key_sender), else a hash of the raw bytes
    reason: str | None = None
    key_sender: str = ""  # the sender's address, lower-cased, when the key is its Message-ID
    message_id: str | None = None
    sender_name: str | None = None
    sender_address: str | None = None
    recipients: list[str] = field(default_factory=list)
    subject: str | None = None
    text: str = ""
    truncated: bool = False
    language: str | None = None
    occurred_at: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    size: int = 0

    def to_feedback(self, *, recipient: str | None = None) -> FeedbackIn:
        """The canonical feedback for an accepted message."""
        customer = None
        email = self.sender_address if self.sender_address and _ADDRESS.match(self.sender_address) else None
        name = self.sender_name[:200] if self.sender_name else None
        if email or name:  # an address the contract cannot hold is dropped, the complaint is kept
            customer = Customer(name=name, email=email)
        attributes = {"email_truncated": True} if self.truncated else {}
        if recipient and unstorable_character(recipient):
            recipient = None
        return FeedbackIn(
            channel=Channel.EMAIL,
            text=self.text,
            customer=customer,
            occurred_at=self.occurred_at,
            language=self.language,
            email=EmailDetails(
                message_id=self.message_id and self.message_id[:998],
                sender=self.sender_address and self.sender_address[:998],
                recipient=(recipient or (self.recipients[0] if self.recipients else None)),
                subject=self.subject and self.subject[:998],
                attachments=self.attachments[:MAX_ATTACHMENTS],
            ),
            attributes=attributes,
        )


def raw_key(raw: bytes) -> str:
    """The dedupe key of a message without a usable Message-ID and sender."""
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def message_key(raw: bytes, message_id: str | None, sender: str | None = None) -> tuple[str, str]:
    """The dedupe key ``(key, sender)``: a Message-ID counts only together with its sender (one
    sender cannot claim another's Message-IDs); without both, the raw bytes' hash and ``""``."""
    if message_id and sender:
        return message_id, sender.lower()
    return raw_key(raw), ""


def parse_email(raw: bytes) -> ParsedEmail:
    """Read one raw message; never raises."""
    try:
        return _parse(raw)
    except Exception as exc:  # the email package is lenient, but a listener must survive anything
        logger.warning("unparseable mail", extra={"size": len(raw), "error": type(exc).__name__})
        return ParsedEmail(status=REJECTED, key=raw_key(raw), reason=f"unparseable message: {type(exc).__name__}",
                           size=len(raw))


def _parse(raw: bytes) -> ParsedEmail:
    msg = message_from_bytes(raw, policy=compat32)
    message_id = header(msg, "Message-ID").strip()[:998] or None
    parsed = ParsedEmail(status=FEEDBACK, key=raw_key(raw), message_id=message_id, size=len(raw))

    if not msg.keys():
        return _reject(parsed, "not an RFC 822 message: no header fields")
    if message_id and (char := unstorable_character(message_id)):
        parsed.message_id = None
        return _reject(parsed, f"the Message-ID contains a control character ({char})")
    from_headers = raw_headers(msg, "From")
    name, address = parse_address(from_headers[0]) if from_headers else ("", "")
    if not address or "@" not in address or any(c.isspace() for c in address) or unstorable_character(address):
        return _reject(parsed, "no valid From address")
    parsed.sender_name = clean_text(name).strip() or None
    parsed.sender_address = address
    parsed.key, parsed.key_sender = message_key(raw, message_id, address)
    parsed.recipients = [
        a for value in raw_headers(msg, "To") for _, a in getaddresses([_unsmuggle(value)])
        if a and len(a) <= 998 and not unstorable_character(a)
    ]
    parsed.subject = clean_text(header(msg, "Subject")).strip() or None
    parsed.occurred_at = _date(msg)

    if reason := auto_reply_reason(msg, parsed):
        parsed.status = AUTO_REPLY
        parsed.reason = reason
        return parsed

    body, capped = _visible_text(msg, parsed.attachments)
    text = strip_reply(body) or (parsed.subject or "")
    text = clean_text(text).strip()
    if not text:
        return _reject(parsed, "no text: empty body and subject")
    if len(text) > MAX_TEXT_CHARS:
        text, capped = text[:MAX_TEXT_CHARS], True
    parsed.text, parsed.truncated = text, capped
    parsed.language = detect(f"{parsed.subject or ''}\n{text}")  # the same detector as every channel
    return parsed


def _reject(parsed: ParsedEmail, reason: str) -> ParsedEmail:
    parsed.status = REJECTED
    parsed.reason = clean_text(reason)[:500]
    return parsed


def auto_reply_reason(msg: Message, parsed: ParsedEmail) -> str | None:
    """Why this message is machine-sent (an auto-reply, a bounce), or None."""
    auto = clean_text(str(msg.get("Auto-Submitted", ""))).strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto[:60]}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder"):
        if msg.get(name) is not None:
            return f"{name} present"
    precedence = str(msg.get("Precedence", "")).strip().lower()
    if precedence in ("auto_reply", "bulk", "junk"):
        return f"Precedence: {precedence}"
    if msg.get_content_type() == "multipart/report":
        return f"delivery report ({clean_text(str(msg.get_param('report-type') or 'unknown'))[:60]})"
    local = (parsed.sender_address or "").split("@")[0].lower()
    if local in _BOUNCE_SENDERS:
        return f"sent by {local}"
    subject = (parsed.subject or "").strip().lower()
    if any(subject.startswith(s) for s in _AUTO_SUBJECTS):
        return "auto-reply subject"
    return None


# --- bodies -----------------------------------------------------------------------------------------------------


@dataclass
class _Budget:
    """What is left to examine of this message's bodies (characters)."""

    plain: int = MAX_BODY_CHARS
    html: int = MAX_HTML_CHARS
    capped: bool = False


def _visible_text(msg: Message, attachments: list[Attachment]) -> tuple[str, bool]:
    """The text a mail client shows (quotes and signatures still in), and whether it was capped."""
    budget = _Budget()
    text = _part_text(msg, attachments, budget, top=True) or ""
    return text, budget.capped


def _is_attachment(part: Message) -> bool:
    disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
    return disposition == "attachment" or _filename(part) is not None


def _part_text(part: Message, attachments: list[Attachment], budget: _Budget, *, top: bool = False) -> str | None:
    """Visible text of one MIME entity (None: nothing to show); attachments are recorded as met."""
    ctype = part.get_content_type()
    if part.get_content_maintype() == "message":  # a forwarded or bounced message: an attachment
        _record_attachment(part, attachments)
        return None
    if part.is_multipart():
        children = part.get_payload()
        if not isinstance(children, list):
            return None
        if ctype == "multipart/alternative":
            return _alternative(children, attachments, budget)
        if ctype == "multipart/related":
            root, *rest = children or [None]
            for other in rest:
                _record_attachments(other, attachments)
            return _part_text(root, attachments, budget) if root is not None else None
        texts: list[str] = []
        previous = None  # the content type of the text leaf shown last
        for child in children:
            ctype = child.get_content_type()
            pair = {previous, ctype} == {"text/plain", "text/html"} and not _is_attachment(child)
            if pair:  # plain and HTML side by side outside an alternative (broken MIME): one of them
                previous = None
                continue
            if text := _part_text(child, attachments, budget):
                texts.append(text)
                previous = ctype if ctype in ("text/plain", "text/html") else None
            else:
                previous = None
        return "\n\n".join(texts) if texts else None
    if ctype in ("text/plain", "text/html") and (top or not _is_attachment(part)):
        return _leaf_text(part, budget)
    _record_attachment(part, attachments)
    return None


def _alternative(children: list[Message], attachments: list[Attachment], budget: _Budget) -> str | None:
    """A client shows one alternative: the plain text, unless it is empty or only says to use HTML."""
    plain = html = None
    for child in children:
        ctype = child.get_content_type()
        if ctype == "text/plain" and plain is None:
            plain = _leaf_text(child, budget)
        elif ctype != "text/plain" and html is None:
            html = _part_text(child, attachments, budget)
        else:
            _record_attachments(child, attachments)
    if plain and plain.strip() and not (len(plain) < 300 and _HTML_PLACEHOLDER.search(plain) and html):
        return plain
    return html or plain


def _leaf_text(part: Message, budget: _Budget) -> str:
    payload = part.get_payload(decode=True) or b""
    text = decode_bytes(payload, part.get_content_charset())
    if part.get_content_type() == "text/html":
        if len(text) > budget.html:
            text, budget.capped = text[:budget.html], True
        budget.html -= len(text)
        return html_to_text(text, enough=MAX_BODY_CHARS)
    if len(text) > budget.plain:
        text, budget.capped = text[:budget.plain], True
    budget.plain -= len(text)
    text = drop_uuencoded(text)
    if len(_ESCAPED_HTML.findall(text, 0, 20_000)) >= 2:  # QQ Mail's plain part carries HTML entities
        text = html.unescape(text).replace("\xa0", " ")
    if str(part.get_param("format", "")).lower() == "flowed":
        text = unflow(text, delsp=str(part.get_param("delsp", "no")).lower() == "yes")
    return text


def _record_attachments(part: Message, attachments: list[Attachment]) -> None:
    if part.is_multipart() and part.get_content_maintype() != "message":
        for child in part.get_payload() if isinstance(part.get_payload(), list) else []:
            _record_attachments(child, attachments)
    else:
        _record_attachment(part, attachments)


def _filename(part: Message) -> str | None:
    """The attachment's file name: RFC 2231 (``filename*=``), RFC 2047 or raw 8-bit, each decoded
    (``Message.get_filename`` would replace raw 8-bit bytes with U+FFFD)."""
    for header_name, param in (("Content-Disposition", "filename"), ("Content-Type", "name")):
        for raw in raw_headers(part, header_name):
            holder = Message()
            holder[header_name] = _unsmuggle(raw)
            value = holder.get_param(param, header=header_name)
            if isinstance(value, tuple):  # RFC 2231: (charset, language, text as Latin-1 of the bytes)
                charset, _, text = value
                return decode_bytes(text.encode("latin-1", "replace"), charset)
            if value:
                return decode_header_value(email.utils.unquote(value))
    return None


def _record_attachment(part: Message, attachments: list[Attachment]) -> None:
    if len(attachments) >= MAX_ATTACHMENTS:
        return
    filename = _filename(part)
    if filename is not None:
        filename = clean_text(filename).strip()[:300] or None
    payload = None if part.is_multipart() else part.get_payload(decode=True)
    if payload is not None:
        size = len(payload)
    else:  # message/rfc822 and friends: measure the raw text
        raw = part.get_payload()
        if isinstance(raw, str):
            size = len(raw.encode("utf-8", "surrogateescape"))
        else:
            try:
                size = len(part.as_bytes())
            except Exception:  # a broken attached message: its size is not worth failing for
                size = 0
    ctype = part.get_content_type()
    content_type = ctype[:200] if unstorable_character(ctype) is None else "application/octet-stream"
    attachments.append(Attachment(filename=filename, content_type=content_type, size=size))
